import Foundation

/// What the runner can do about a problem.
public enum ErrorAction: Equatable, Sendable {
    /// Do the same thing again (start linking again, or ask for a sync).
    case tryAgain
    /// Go through Strava's consent again ("Connect with Strava").
    case reconnect
    /// Nothing to do now; Coach George (or the runner) can try again after this time, if known.
    case waitUntil(Date?)
    /// Nothing the runner can do from this screen.
    case none

    public var retryDate: Date? {
        if case let .waitUntil(date) = self { return date }
        return nil
    }
}

/// A problem in the runner's words: what shows on screen, plus the stable code for support.
public struct ErrorPresentation: Equatable, Sendable {
    public let code: String
    public let title: String
    public let message: String
    public let action: ErrorAction

    public init(code: String, title: String, message: String, action: ErrorAction) {
        self.code = code
        self.title = title
        self.message = message
        self.action = action
    }
}

/// The contract's error codes (docs/contract.md §3; HTTP errors and `StravaStatus.error.code` share them)
/// in the runner's words, plus the codes the server emits beyond them (`service_unavailable`,
/// `payload_too_large`).
public enum StravaErrorCatalog {
    /// One switch over the error codes. The Linux CI reads the string literals of this switch and
    /// checks that they are exactly the contract's vocabulary plus every other code the server can
    /// emit (read from the server's code): add a case when either gains one. An unknown code falls
    /// back to the server's own message.
    public static func presentation(
        forCode code: String, serverMessage: String? = nil, retryAt: Date? = nil
    ) -> ErrorPresentation {
        let title: String
        let message: String
        let action: ErrorAction
        switch code {
        case "unauthenticated":
            title = "Your session has ended"
            message = "Sign in to Coach George again, then connect Strava."
            action = .tryAgain
        case "invalid_request":
            title = "Strava could not be connected"
            message = "Coach George sent a request the server did not accept. Try again."
            action = .tryAgain
        case "profile_required":
            title = "Finish your profile first"
            message = "Coach George needs your runner profile before it can connect Strava."
            action = .none
        case "redirect_uri_not_allowed":
            title = "This version of Coach George cannot connect Strava"
            message = "Update Coach George from the App Store, then connect Strava again."
            action = .none
        case "invalid_state":
            title = "This link attempt is no longer valid"
            message = "It was already used, or a newer one was started. Start again from here."
            action = .tryAgain
        case "state_expired":
            title = "This link attempt expired"
            message = "Connecting Strava has to be finished within 10 minutes. Start again."
            action = .tryAgain
        case "pkce_mismatch":
            title = "This link attempt could not be verified"
            message = "The answer from Strava did not match the request this app made. Start again."
            action = .tryAgain
        case "access_denied":
            title = "You cancelled the connection"
            message = "Strava was not connected because the authorization was cancelled. "
                + "Connect again when you are ready."
            action = .tryAgain
        case "insufficient_scope":
            title = "Coach George needs to see your activities"
            message = "Strava was connected without permission to read your activities. "
                + "Connect again and keep “View data about your activities” ticked."
            action = .reconnect
        case "athlete_already_linked":
            title = "This Strava account is already linked"
            message = "That Strava account is connected to another Coach George account. "
                + "Disconnect it there first, or connect a different Strava account."
            action = .none
        case "not_linked":
            title = "Strava is not connected"
            message = "Connect Strava so Coach George can read your recent runs."
            action = .reconnect
        case "reauth_required":
            title = "Strava needs you to connect again"
            message = "Strava no longer accepts Coach George's authorization. Connect again."
            action = .reconnect
        case "revoked":
            title = "Access was removed on Strava"
            message = "Coach George can no longer read your activities. "
                + "Connect again to resume syncing."
            action = .reconnect
        case "rate_limited":
            title = "Strava is busy"
            message = "Strava asked us to slow down. Coach George will try again automatically."
            action = .waitUntil(retryAt)
        case "strava_unavailable":
            title = "Strava is not answering"
            message = "Strava could not be reached. Try again in a moment."
            action = .waitUntil(retryAt)
        case "service_unavailable":
            // Not in docs/contract.md §3's list, but the server sends it: a 503 with `Retry-After` when
            // one of its own dependencies (the sync queue, the database) is down for a moment.
            title = "Coach George is briefly unavailable"
            message = "Coach George could not take this request just now. It will work again shortly."
            action = .waitUntil(retryAt)
        case "internal_error":
            // A defect on the server (500): nothing the runner did; trying again may work.
            title = "Something went wrong on our side"
            message = "Coach George hit a problem it did not expect. Try again in a moment."
            action = .tryAgain
        case "payload_too_large":
            // The server refuses request bodies over 64 KB (413); the app's are far smaller, so
            // this is a bug on our side, never the runner's doing.
            title = "Coach George could not send this"
            message = "The request was larger than the server accepts. Update Coach George and try again."
            action = .none
        case "strava_athlete_limit":
            // Strava refused the link: Coach George's app is at Strava's connected-athlete limit.
            title = "Strava is not accepting new connections"
            message = "Coach George has reached the number of athletes Strava lets it connect. "
                + "Nothing is wrong on your side; we are asking Strava for more room."
            action = .none
        case "sync_failed":
            title = "The last sync failed"
            message = "Your recent activities could not be read from Strava. Try again."
            action = .tryAgain
        case "key_unavailable":
            title = "Your Strava connection cannot be read right now"
            message = "This is on our side and we are on it. Nothing for you to do."
            action = .none
        case "sync_in_progress":
            title = "A sync is already running"
            message = "Your activities are being read from Strava right now."
            action = .none
        case "not_found":
            title = "Not found"
            message = "Coach George could not find what was asked for."
            action = .none
        default:
            title = "Something went wrong with Strava"
            message = serverMessage ?? "Try again in a moment."
            action = .tryAgain
        }
        return ErrorPresentation(code: code, title: title, message: message, action: action)
    }
}

/// Every way linking, loading the status or asking for a sync can fail.
public enum StravaLinkError: Error, Equatable, Sendable {
    /// The API answered with a contract error body; `retryAt` comes from `Retry-After`.
    case api(status: Int, body: APIError, retryAt: Date?)
    /// A non-2xx answer without a contract body (a proxy page, a crash).
    case unexpectedResponse(status: Int)
    /// A 2xx answer whose body is not the contract's document.
    case invalidResponse
    /// The request did not get an answer (`URLError.Code` raw value).
    case network(code: Int)
    /// No runner session: the token provider had no token.
    case notSignedIn
    /// The redirect back from Strava was not ours, or not for this attempt.
    case callback(CallbackError)
    /// The runner said no on Strava's consent page.
    case accessDenied
    /// The link token's authorize URL is not an http(s) URL.
    case invalidAuthorizeURL
    /// The system web authentication sheet failed (not a cancellation).
    case webAuthentication
    /// No secure random bytes for the PKCE verifier.
    case randomUnavailable
    /// Anything else.
    case unexpected

    /// Normalizes any error thrown by the service or the link flow.
    public init(_ error: Error) {
        switch error {
        case let error as StravaLinkError:
            self = error
        case let error as CallbackError:
            self = .callback(error)
        case is WebAuthenticationError:
            self = .webAuthentication
        case is PKCEError:
            self = .randomUnavailable
        case let error as URLError:
            self = .network(code: error.code.rawValue)
        default:
            self = .unexpected
        }
    }

    public var presentation: ErrorPresentation {
        switch self {
        case let .api(_, body, retryAt):
            return StravaErrorCatalog.presentation(
                forCode: body.error, serverMessage: body.message, retryAt: retryAt
            )
        case .accessDenied:
            return StravaErrorCatalog.presentation(forCode: "access_denied")
        case .notSignedIn:
            return StravaErrorCatalog.presentation(forCode: "unauthenticated")
        case .callback(.missingState), .callback(.stateMismatch):
            // Not the answer to the attempt this app started (or a forged one): start over.
            return StravaErrorCatalog.presentation(forCode: "invalid_state")
        case .callback:
            return ErrorPresentation(
                code: "invalid_callback",
                title: "Strava's answer could not be read",
                message: "Coach George did not understand the answer from Strava. Try again.",
                action: .tryAgain
            )
        case .network:
            return ErrorPresentation(
                code: "network_error",
                title: "No connection",
                message: "Coach George could not be reached. Check your connection and try again.",
                action: .tryAgain
            )
        case .unexpectedResponse, .invalidResponse, .invalidAuthorizeURL, .unexpected:
            return ErrorPresentation(
                code: "server_error",
                title: "Something went wrong on our side",
                message: "Try again in a moment.",
                action: .tryAgain
            )
        case .webAuthentication, .randomUnavailable:
            return ErrorPresentation(
                code: "web_authentication",
                title: "Strava could not be opened",
                message: "The sign-in window could not be shown. Try again.",
                action: .tryAgain
            )
        }
    }
}

extension StravaStatus.StatusError {
    /// The status document's error: the server's message and suggested action win, the catalog
    /// gives the title (and the action when the server's is one this app does not know).
    public var presentation: ErrorPresentation {
        let base = StravaErrorCatalog.presentation(forCode: code, serverMessage: message, retryAt: retryAt)
        let recovery: ErrorAction
        switch action {
        case .reconnect:
            recovery = .reconnect
        case .wait:
            recovery = .waitUntil(retryAt)
        case .retry:
            recovery = .tryAgain
        case .noAction:
            recovery = .none
        case .unknown:
            recovery = base.action
        }
        let text = message.trimmingCharacters(in: .whitespacesAndNewlines)
        return ErrorPresentation(
            code: code, title: base.title, message: text.isEmpty ? base.message : text, action: recovery
        )
    }
}
