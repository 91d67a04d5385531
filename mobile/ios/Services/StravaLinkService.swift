import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking // URLSession on Linux
#endif
#if canImport(os)
import os
#endif

// MARK: - Endpoints

public enum HTTPMethod: String, Sendable {
    case get = "GET"
    case post = "POST"
    case delete = "DELETE"
}

/// One endpoint of the HTTP contract (docs/contract.md §3). The Linux CI finds every
/// `Endpoint(method:path:)` in the Swift sources and checks it against the server's OpenAPI
/// document: keep the method and path as literals here.
public struct Endpoint: Equatable, Sendable {
    public let method: HTTPMethod
    public let path: String

    public init(method: HTTPMethod, path: String) {
        self.method = method
        self.path = path
    }

    /// `{code_challenge, code_challenge_method, redirect_uri?}` → 201 `LinkTokenResponse`.
    public static let linkToken = Endpoint(method: .post, path: "/api/v1/strava/link-token")
    /// `CallbackRequest` → 200 `StravaStatus`.
    public static let callback = Endpoint(method: .post, path: "/api/v1/strava/callback")
    /// → 200 `StravaStatus`.
    public static let status = Endpoint(method: .get, path: "/api/v1/strava/status")
    /// `{}` → 202 `SyncQueuedResponse`.
    public static let sync = Endpoint(method: .post, path: "/api/v1/strava/sync")
    /// → 204; deauthorizes at Strava and deletes the Strava-derived data.
    public static let unlink = Endpoint(method: .delete, path: "/api/v1/strava/link")
}

// MARK: - Seams

/// The runner's bearer token for Coach George's API (from the app's identity layer).
public protocol TokenProvider: Sendable {
    /// The current access token, or nil when nobody is signed in. May refresh it first.
    func accessToken() async throws -> String?
}

/// Sends one request; the test seam under `StravaLinkService` (tests use a `URLProtocol` stub
/// through `URLSessionTransport` instead, so the real URLSession code path is exercised).
public protocol HTTPTransport: Sendable {
    func send(_ request: URLRequest) async throws -> (Data, HTTPURLResponse)
}

public struct URLSessionTransport: HTTPTransport {
    private let session: URLSession

    public init(session: URLSession = .shared) {
        self.session = session
    }

    public func send(_ request: URLRequest) async throws -> (Data, HTTPURLResponse) {
        #if canImport(FoundationNetworking)
        // swift-corelibs-foundation has no async `data(for:)`.
        let (data, response): (Data, URLResponse) = try await withCheckedThrowingContinuation { continuation in
            let task = session.dataTask(with: request) { data, response, error in
                if let error {
                    continuation.resume(throwing: error)
                } else if let response {
                    continuation.resume(returning: (data ?? Data(), response))
                } else {
                    continuation.resume(throwing: URLError(.badServerResponse))
                }
            }
            task.resume()
        }
        #else
        let (data, response) = try await session.data(for: request)
        #endif
        guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
        return (data, http)
    }
}

// MARK: - Requests

/// Builds the contract's requests: method, absolute URL, JSON headers and the bearer token.
public struct StravaAPIRequestBuilder: Sendable {
    public let baseURL: URL

    public init(baseURL: URL) {
        self.baseURL = baseURL
    }

    /// `baseURL`'s own path (if any) followed by the endpoint's path.
    public func url(for endpoint: Endpoint) -> URL {
        guard var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false) else {
            return baseURL.appendingPathComponent(endpoint.path)
        }
        var prefix = components.path
        while prefix.hasSuffix("/") { prefix.removeLast() }
        components.path = prefix + endpoint.path
        components.query = nil
        components.fragment = nil
        return components.url ?? baseURL.appendingPathComponent(endpoint.path)
    }

    public func makeRequest(_ endpoint: Endpoint, bearerToken: String, body: Data? = nil) -> URLRequest {
        var request = URLRequest(url: url(for: endpoint))
        request.httpMethod = endpoint.method.rawValue
        request.cachePolicy = .reloadIgnoringLocalCacheData
        request.timeoutInterval = 30
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        request.setValue("Bearer \(bearerToken)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return request
    }
}

// MARK: - Logging

/// What the link code logs: endpoint paths, HTTP statuses and stable error codes. Never a bearer
/// token, an OAuth `code`, a `state` or a PKCE verifier: none of them is ever passed here.
enum LinkLog {
    #if canImport(os)
    static let logger = Logger(subsystem: "app.coachgeorge.ios", category: "strava-link")
    #endif

    static func response(_ endpoint: Endpoint, status: Int) {
        #if canImport(os)
        logger.info(
            "\(endpoint.method.rawValue, privacy: .public) \(endpoint.path, privacy: .public) → \(status, privacy: .public)"
        )
        #endif
    }

    static func failure(_ event: String, reason: String) {
        #if canImport(os)
        logger.notice("\(event, privacy: .public): \(reason, privacy: .public)")
        #endif
    }
}

// MARK: - The API client

/// Coach George's Strava endpoints, for the runner signed in through `TokenProvider`.
public struct StravaLinkService: Sendable {
    public let requests: StravaAPIRequestBuilder
    private let tokenProvider: any TokenProvider
    private let transport: any HTTPTransport
    private let now: @Sendable () -> Date

    public init(
        baseURL: URL,
        tokenProvider: any TokenProvider,
        transport: any HTTPTransport = URLSessionTransport(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.requests = StravaAPIRequestBuilder(baseURL: baseURL)
        self.tokenProvider = tokenProvider
        self.transport = transport
        self.now = now
    }

    /// `POST /api/v1/strava/link-token`: starts a link attempt (409 `profile_required` before a
    /// profile exists).
    public func createLinkToken(_ body: LinkTokenRequest) async throws -> LinkTokenResponse {
        try await send(.linkToken, body: body, as: LinkTokenResponse.self)
    }

    /// `POST /api/v1/strava/callback`: hands Strava's answer and the verifier to the backend.
    public func completeLink(_ body: CallbackRequest) async throws -> StravaStatus {
        try await send(.callback, body: body, as: StravaStatus.self)
    }

    /// `GET /api/v1/strava/status`.
    public func status() async throws -> StravaStatus {
        try await send(.status, as: StravaStatus.self)
    }

    /// `GET /api/v1/training/load`: the training-load model of the last 28 days (daily load,
    /// fitness, fatigue, form, today's figures and flags, the physiology used).
    public func trainingLoad() async throws -> TrainingLoadDocument {
        try await send(.trainingLoad, as: TrainingLoadDocument.self)
    }

    /// `POST /api/v1/strava/sync`: asks for a sync now (coalesces with one already queued).
    public func requestSync() async throws -> SyncQueuedResponse {
        try await send(.sync, body: SyncRequest(), as: SyncQueuedResponse.self)
    }

    /// `DELETE /api/v1/strava/link`.
    public func unlink() async throws {
        _ = try await perform(.unlink, body: nil)
    }

    // MARK: Plumbing

    private func send<Response: Decodable>(_ endpoint: Endpoint, as type: Response.Type) async throws -> Response {
        let data = try await perform(endpoint, body: nil)
        return try decode(type, from: data, endpoint: endpoint)
    }

    private func send<Body: Encodable, Response: Decodable>(
        _ endpoint: Endpoint, body: Body, as type: Response.Type
    ) async throws -> Response {
        let encoded: Data
        do {
            encoded = try APIJSON.encoder().encode(body)
        } catch {
            throw StravaLinkError.unexpected
        }
        let data = try await perform(endpoint, body: encoded)
        return try decode(type, from: data, endpoint: endpoint)
    }

    private func perform(_ endpoint: Endpoint, body: Data?) async throws -> Data {
        let token: String
        do {
            guard let current = try await tokenProvider.accessToken(), !current.isEmpty else {
                throw StravaLinkError.notSignedIn
            }
            token = current
        } catch {
            throw StravaLinkError.notSignedIn
        }

        let request = requests.makeRequest(endpoint, bearerToken: token, body: body)
        let result: (Data, HTTPURLResponse)
        do {
            result = try await transport.send(request)
        } catch let error as URLError {
            if error.code == .cancelled { throw CancellationError() }
            LinkLog.failure("network", reason: String(error.code.rawValue))
            throw StravaLinkError.network(code: error.code.rawValue)
        }
        let (data, response) = result
        LinkLog.response(endpoint, status: response.statusCode)
        guard (200..<300).contains(response.statusCode) else {
            throw apiError(status: response.statusCode, data: data, response: response)
        }
        return data
    }

    private func apiError(status: Int, data: Data, response: HTTPURLResponse) -> StravaLinkError {
        guard let body = try? APIJSON.decoder().decode(APIError.self, from: data) else {
            return .unexpectedResponse(status: status)
        }
        LinkLog.failure("api_error", reason: body.error)
        return .api(status: status, body: body, retryAt: retryAfter(response))
    }

    /// `Retry-After` in seconds (the server's form) as a date.
    private func retryAfter(_ response: HTTPURLResponse) -> Date? {
        for (key, value) in response.allHeaderFields {
            guard let name = key as? String, name.lowercased() == "retry-after" else { continue }
            guard
                let text = value as? String,
                let seconds = TimeInterval(text.trimmingCharacters(in: .whitespaces))
            else {
                return nil // an HTTP date: the status document's retry_at says when instead
            }
            return now().addingTimeInterval(seconds)
        }
        return nil
    }

    private func decode<Response: Decodable>(
        _ type: Response.Type, from data: Data, endpoint: Endpoint
    ) throws -> Response {
        do {
            return try APIJSON.decoder().decode(type, from: data)
        } catch {
            LinkLog.failure("invalid_response", reason: endpoint.path)
            throw StravaLinkError.invalidResponse
        }
    }
}

// MARK: - The link flow

/// How one "Connect with Strava" tap ended.
public enum LinkOutcome: Equatable, Sendable {
    case linked(StravaStatus)
    /// The runner closed the sheet (`ASWebAuthenticationSessionError.canceledLogin`): not an error,
    /// the step goes back to idle.
    case cancelled
    case failed(StravaLinkError)
}

/// The link flow of docs/contract.md §2, without any UI: PKCE pair → link token → Strava's consent page
/// in a web authentication session → the redirect checked against the issued `state` →
/// `POST /api/v1/strava/callback` with the verifier.
public struct StravaLinkFlow: Sendable {
    /// The custom scheme Strava redirects to; it must be registered in the app's URL types.
    public static let callbackURLScheme = "coachai"
    public static let defaultRedirectURI = "coachai://oauth/strava"

    public let service: StravaLinkService
    public let redirectURI: String

    public init(service: StravaLinkService, redirectURI: String = StravaLinkFlow.defaultRedirectURI) {
        self.service = service
        self.redirectURI = redirectURI
    }

    @MainActor
    public func run(with authenticator: some WebAuthenticator) async -> LinkOutcome {
        do {
            // The verifier and the state stay in this function's locals: never stored, never logged.
            let pkce = try PKCEPair.generate()
            let token = try await service.createLinkToken(
                LinkTokenRequest(codeChallenge: pkce.challenge, codeChallengeMethod: PKCE.method, redirectURI: redirectURI)
            )
            guard let scheme = token.authorizeURL.scheme?.lowercased(), scheme == "https" || scheme == "http" else {
                return .failed(.invalidAuthorizeURL)
            }

            let callbackURL: URL
            do {
                callbackURL = try await authenticator.authenticate(
                    url: token.authorizeURL, callbackURLScheme: StravaLinkFlow.callbackURLScheme
                )
            } catch WebAuthenticationError.cancelled {
                return .cancelled
            } catch is CancellationError {
                return .cancelled
            }

            switch try StravaCallback.parse(callbackURL, expectedState: token.state, redirectURI: token.redirectURI) {
            case let .authorized(code, scope):
                let status = try await service.completeLink(
                    .authorized(state: token.state, code: code, scope: scope, codeVerifier: pkce.verifier)
                )
                return .linked(status)
            case let .denied(error):
                // Spend the attempt on the server as well, so the status can say why linking stopped.
                _ = try? await service.completeLink(
                    .denied(state: token.state, error: error, codeVerifier: pkce.verifier)
                )
                return .failed(.accessDenied)
            }
        } catch is CancellationError {
            return .cancelled
        } catch {
            let failure = StravaLinkError(error)
            LinkLog.failure("link_failed", reason: failure.presentation.code)
            return .failed(failure)
        }
    }
}
