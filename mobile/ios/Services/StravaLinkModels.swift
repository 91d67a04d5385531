import Foundation

// The documents of the HTTP contract (docs/contract.md §3). Every JSON key is spelled out in a
// `CodingKeys` enum: the Linux CI reads them from this source and compares them with the
// server's OpenAPI schema, so keep them explicit (no key-decoding strategy).
// The server may add fields: decoding ignores keys it does not know, and unknown enum values
// decode as `.unknown` instead of failing the whole document.

// MARK: - POST /api/v1/strava/link-token

public struct LinkTokenRequest: Codable, Equatable, Sendable {
    public var codeChallenge: String
    public var codeChallengeMethod: String
    /// Omitted when nil: the server then uses its default (first allow-listed) redirect URI.
    public var redirectURI: String?

    public init(codeChallenge: String, codeChallengeMethod: String = PKCE.method, redirectURI: String?) {
        self.codeChallenge = codeChallenge
        self.codeChallengeMethod = codeChallengeMethod
        self.redirectURI = redirectURI
    }

    enum CodingKeys: String, CodingKey {
        case codeChallenge = "code_challenge"
        case codeChallengeMethod = "code_challenge_method"
        case redirectURI = "redirect_uri"
    }
}

public struct LinkTokenResponse: Codable, Equatable, Sendable {
    public var state: String
    public var authorizeURL: URL
    public var redirectURI: String
    public var expiresAt: Date

    public init(state: String, authorizeURL: URL, redirectURI: String, expiresAt: Date) {
        self.state = state
        self.authorizeURL = authorizeURL
        self.redirectURI = redirectURI
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case state = "state"
        case authorizeURL = "authorize_url"
        case redirectURI = "redirect_uri"
        case expiresAt = "expires_at"
    }
}

extension LinkTokenResponse: CustomStringConvertible, CustomDebugStringConvertible {
    // `state` (also inside the authorize URL) is a single-use secret until the callback is done.
    public var description: String {
        "LinkTokenResponse(state: <redacted>, authorizeURL: \(authorizeURL.host ?? "?")/…, "
            + "redirectURI: \(redirectURI), expiresAt: \(expiresAt))"
    }

    public var debugDescription: String { description }
}

// MARK: - POST /api/v1/strava/callback

/// `{state, code, scope, code_verifier}` after consent, `{state, error, code_verifier}` after a
/// denial. Nil fields are left out of the JSON.
public struct CallbackRequest: Codable, Equatable, Sendable {
    public var state: String
    public var code: String?
    public var scope: String?
    public var codeVerifier: String
    public var error: String?

    public init(state: String, code: String?, scope: String?, codeVerifier: String, error: String?) {
        self.state = state
        self.code = code
        self.scope = scope
        self.codeVerifier = codeVerifier
        self.error = error
    }

    public static func authorized(state: String, code: String, scope: String, codeVerifier: String) -> CallbackRequest {
        CallbackRequest(state: state, code: code, scope: scope, codeVerifier: codeVerifier, error: nil)
    }

    public static func denied(state: String, error: String, codeVerifier: String) -> CallbackRequest {
        CallbackRequest(state: state, code: nil, scope: nil, codeVerifier: codeVerifier, error: error)
    }

    enum CodingKeys: String, CodingKey {
        case state = "state"
        case code = "code"
        case scope = "scope"
        case codeVerifier = "code_verifier"
        case error = "error"
    }
}

extension CallbackRequest: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String {
        "CallbackRequest(state: <redacted>, code: \(code == nil ? "nil" : "<redacted>"), "
            + "scope: \(scope ?? "nil"), codeVerifier: <redacted>, error: \(error ?? "nil"))"
    }

    public var debugDescription: String { description }
}

// MARK: - StravaStatus (GET /api/v1/strava/status, and the callback's answer)

public struct StravaStatus: Codable, Equatable, Sendable {
    public var status: LinkStatus
    public var athlete: Athlete?
    public var scopes: [String]
    public var linkedAt: Date?
    public var sync: Sync
    public var error: StatusError?

    public init(
        status: LinkStatus,
        athlete: Athlete?,
        scopes: [String],
        linkedAt: Date?,
        sync: Sync,
        error: StatusError?
    ) {
        self.status = status
        self.athlete = athlete
        self.scopes = scopes
        self.linkedAt = linkedAt
        self.sync = sync
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case status = "status"
        case athlete = "athlete"
        case scopes = "scopes"
        case linkedAt = "linked_at"
        case sync = "sync"
        case error = "error"
    }

    public enum LinkStatus: String, Codable, Sendable {
        case notLinked = "not_linked"
        case linked = "linked"
        case actionRequired = "action_required"
        case unknown = "unknown"

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = LinkStatus(rawValue: raw) ?? .unknown
        }
    }

    public struct Athlete: Codable, Equatable, Sendable {
        /// Strava athlete ids are 64-bit.
        public var id: Int64
        public var firstname: String?
        public var lastname: String?

        public init(id: Int64, firstname: String?, lastname: String?) {
            self.id = id
            self.firstname = firstname
            self.lastname = lastname
        }

        enum CodingKeys: String, CodingKey {
            case id = "id"
            case firstname = "firstname"
            case lastname = "lastname"
        }

        /// "Jane D.": first name and the initial of the last name, as Strava shows athletes.
        public var displayName: String {
            let first = (firstname ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let last = (lastname ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let initial = last.first.map { "\($0)." } ?? ""
            let name = [first, initial].filter { !$0.isEmpty }.joined(separator: " ")
            return name.isEmpty ? "Athlete \(id)" : name
        }
    }

    public struct Sync: Codable, Equatable, Sendable {
        public var state: SyncState
        public var lastSyncAt: Date?
        public var lastSuccessAt: Date?
        public var lastResult: SyncResult?
        public var nextSyncAt: Date?
        public var workoutsInWindow: Int
        /// `live`: Strava pushes new activities within seconds; `polling`: hourly; nil: not linked.
        public var updates: Updates?

        public init(
            state: SyncState,
            lastSyncAt: Date?,
            lastSuccessAt: Date?,
            lastResult: SyncResult?,
            nextSyncAt: Date?,
            workoutsInWindow: Int,
            updates: Updates? = nil
        ) {
            self.state = state
            self.lastSyncAt = lastSyncAt
            self.lastSuccessAt = lastSuccessAt
            self.lastResult = lastResult
            self.nextSyncAt = nextSyncAt
            self.workoutsInWindow = workoutsInWindow
            self.updates = updates
        }

        enum CodingKeys: String, CodingKey {
            case state = "state"
            case lastSyncAt = "last_sync_at"
            case lastSuccessAt = "last_success_at"
            case lastResult = "last_result"
            case nextSyncAt = "next_sync_at"
            case workoutsInWindow = "workouts_in_window"
            case updates = "updates"
        }
    }

    public enum Updates: String, Codable, Sendable {
        case live = "live"
        case polling = "polling"
        case unknown = "unknown"

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = Updates(rawValue: raw) ?? .unknown
        }
    }

    public enum SyncResult: String, Codable, Sendable {
        case ok = "ok"
        case partial = "partial"
        case failed = "failed"
        case unknown = "unknown"

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = SyncResult(rawValue: raw) ?? .unknown
        }
    }

    /// What went wrong and what the runner can do; `code` uses the contract's error vocabulary.
    public struct StatusError: Codable, Equatable, Sendable {
        public var code: String
        public var message: String
        public var action: ServerAction
        public var retryAt: Date?

        public init(code: String, message: String, action: ServerAction, retryAt: Date?) {
            self.code = code
            self.message = message
            self.action = action
            self.retryAt = retryAt
        }

        enum CodingKeys: String, CodingKey {
            case code = "code"
            case message = "message"
            case action = "action"
            case retryAt = "retry_at"
        }
    }

    /// The server's suggestion (`StravaStatus.error.action`); the app maps it to an `ErrorAction`.
    public enum ServerAction: String, Codable, Sendable {
        case reconnect = "reconnect"
        case wait = "wait"
        case retry = "retry"
        case noAction = "none"
        case unknown = "unknown"

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = ServerAction(rawValue: raw) ?? .unknown
        }
    }
}

public enum SyncState: String, Codable, Sendable {
    case idle = "idle"
    case queued = "queued"
    case running = "running"
    case unknown = "unknown"

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = SyncState(rawValue: raw) ?? .unknown
    }

    public var isActive: Bool { self == .queued || self == .running }
}

// MARK: - POST /api/v1/strava/sync

/// The body of `POST /api/v1/strava/sync`: an empty object, `{}`.
public struct SyncRequest: Codable, Equatable, Sendable {
    public init() {}
}

public struct SyncQueuedResponse: Codable, Equatable, Sendable {
    /// A queued or running sync of the same runner answers with its own id (syncs coalesce).
    public var syncRunID: UUID
    public var state: SyncState

    public init(syncRunID: UUID, state: SyncState) {
        self.syncRunID = syncRunID
        self.state = state
    }

    enum CodingKeys: String, CodingKey {
        case syncRunID = "sync_run_id"
        case state = "state"
    }
}

// MARK: - Errors

/// Every 4xx (and our own 5xx) body: `{"error": "<stable_code>", "message": "…", "detail": …}`.
/// `detail` is free-form and not needed by the app, so it is not decoded.
public struct APIError: Codable, Equatable, Sendable {
    public var error: String
    public var message: String

    public init(error: String, message: String) {
        self.error = error
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case error = "error"
        case message = "message"
    }
}

// MARK: - JSON coding

/// Encoders and decoders for the contract's JSON, with its timestamps.
public enum APIJSON {
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = APIJSON.parseDate(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "Not an ISO 8601 timestamp: \(text)"
                )
            }
            return date
        }
        return decoder
    }

    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    /// ISO 8601 as the server writes it: `2026-11-24T10:00:00Z`, with any number of fractional
    /// digits (`…:12.345678Z`) and any offset (`+00:00`); a timestamp without an offset is UTC.
    public static func parseDate(_ text: String) -> Date? {
        var base = text
        var fraction = 0.0
        if let dot = text.firstIndex(of: ".") {
            let digitsStart = text.index(after: dot)
            let digitsEnd = text[digitsStart...].firstIndex { !($0.isASCII && $0.isNumber) } ?? text.endIndex
            let digits = String(text[digitsStart..<digitsEnd])
            guard !digits.isEmpty, let value = Double("0." + digits) else { return nil }
            fraction = value
            base = String(text[..<dot]) + String(text[digitsEnd...])
        }
        guard let timeStart = base.firstIndex(of: "T") else { return nil }
        let time = base[timeStart...]
        if !(time.contains("Z") || time.contains("z") || time.contains("+") || time.contains("-")) {
            base += "Z"
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        guard let date = formatter.date(from: base) else { return nil }
        return date.addingTimeInterval(fraction)
    }
}
