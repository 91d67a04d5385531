import Foundation

/// Why a URL that came back from the web authentication session is not usable.
public enum CallbackError: Error, Equatable, Sendable {
    /// Not our redirect URI (other scheme, host or path), or a parameter given twice.
    case notACallback
    /// No `state`: not the answer to an attempt this app started.
    case missingState
    /// A `state` other than the one this attempt was issued: a stale or forged redirect.
    case stateMismatch
    /// Neither `code` nor `error`.
    case missingCode
}

/// Strava's redirect back to the app (docs/strava.md §1.4):
/// `coachai://oauth/strava?state=…&code=…&scope=…` or `coachai://oauth/strava?state=…&error=access_denied`.
public enum StravaCallback: Equatable, Sendable {
    /// Consent given; `scope` is what the runner actually granted (comma-separated, may be empty).
    case authorized(code: String, scope: String)
    /// Consent refused (`error=access_denied`) or another OAuth error.
    case denied(error: String)

    /// Parses `url` for the attempt that was issued `expectedState` and `redirectURI`.
    /// `state` is checked before anything else: a redirect for another attempt is never used.
    public static func parse(_ url: URL, expectedState: String, redirectURI: String) throws -> StravaCallback {
        guard
            let expected = URLComponents(string: redirectURI),
            let components = URLComponents(url: url, resolvingAgainstBaseURL: false),
            components.scheme?.lowercased() == expected.scheme?.lowercased(),
            components.host?.lowercased() == expected.host?.lowercased(),
            normalizedPath(components.path) == normalizedPath(expected.path)
        else {
            throw CallbackError.notACallback
        }
        let items = components.queryItems ?? []

        func single(_ name: String) throws -> String? {
            let matches = items.filter { $0.name == name }
            guard matches.count <= 1 else { throw CallbackError.notACallback }
            return matches.first?.value
        }

        guard let state = try single("state"), !state.isEmpty else { throw CallbackError.missingState }
        guard state == expectedState else { throw CallbackError.stateMismatch }
        if let error = try single("error") {
            return .denied(error: error.isEmpty ? "access_denied" : error)
        }
        guard let code = try single("code"), !code.isEmpty else { throw CallbackError.missingCode }
        let scope = try single("scope") ?? ""
        return .authorized(code: code, scope: scope)
    }

    private static func normalizedPath(_ path: String) -> String {
        var path = path
        while path.hasSuffix("/") { path.removeLast() }
        return path
    }
}

extension StravaCallback: CustomStringConvertible, CustomDebugStringConvertible {
    // The code can be exchanged for tokens (once): never in logs or crash reports.
    public var description: String {
        switch self {
        case let .authorized(_, scope):
            return "StravaCallback.authorized(code: <redacted>, scope: \(scope))"
        case let .denied(error):
            return "StravaCallback.denied(error: \(error))"
        }
    }

    public var debugDescription: String { description }
}
