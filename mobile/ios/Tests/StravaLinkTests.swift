import XCTest
@testable import StravaLinkService
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// MARK: - Test doubles

/// A fixed bearer token (or none).
struct StaticTokenProvider: TokenProvider {
    let token: String?

    func accessToken() async throws -> String? { token }
}

/// One request as the stub server saw it.
struct RecordedRequest {
    let method: String
    let url: URL
    let headers: [String: String]
    let body: Data?

    func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }

    func jsonBody() throws -> [String: Any] {
        let data = try XCTUnwrap(body, "request has no body")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

struct StubReply {
    var status: Int
    var headers: [String: String] = ["Content-Type": "application/json"]
    var body: Data = Data()

    static func json(_ status: Int, _ text: String, headers: [String: String] = [:]) -> StubReply {
        var all = ["Content-Type": "application/json"]
        all.merge(headers) { _, new in new }
        return StubReply(status: status, headers: all, body: Data(text.utf8))
    }

    static func fixture(_ status: Int, _ name: String) throws -> StubReply {
        StubReply(status: status, body: try Fixtures.data(name))
    }
}

/// What the stub answers, and what it was asked; shared with `StubURLProtocol`.
final class StubServer: @unchecked Sendable {
    private let lock = NSLock()
    private var handler: (RecordedRequest) throws -> StubReply = { _ in StubReply(status: 500) }
    private var recorded: [RecordedRequest] = []

    func reset(_ handler: @escaping (RecordedRequest) throws -> StubReply) {
        lock.lock()
        defer { lock.unlock() }
        self.handler = handler
        recorded = []
    }

    var requests: [RecordedRequest] {
        lock.lock()
        defer { lock.unlock() }
        return recorded
    }

    func answer(_ request: RecordedRequest) throws -> StubReply {
        lock.lock()
        recorded.append(request)
        let handler = self.handler
        lock.unlock()
        return try handler(request)
    }
}

/// Answers every request of its session from `StubURLProtocol.server`, through the real
/// URLSession machinery (headers, status codes, bodies).
final class StubURLProtocol: URLProtocol {
    static let server = StubServer()

    override class func canInit(with request: URLRequest) -> Bool { true }

    override class func canonicalRequest(for request: URLRequest) -> URLRequest { request }

    override func startLoading() {
        guard let url = request.url else {
            client?.urlProtocol(self, didFailWithError: URLError(.badURL))
            return
        }
        let recorded = RecordedRequest(
            method: request.httpMethod ?? "GET",
            url: url,
            headers: request.allHTTPHeaderFields ?? [:],
            body: Self.body(of: request)
        )
        do {
            let reply = try Self.server.answer(recorded)
            guard let response = HTTPURLResponse(
                url: url, statusCode: reply.status, httpVersion: "HTTP/1.1", headerFields: reply.headers
            ) else {
                client?.urlProtocol(self, didFailWithError: URLError(.badServerResponse))
                return
            }
            client?.urlProtocol(self, didReceive: response, cacheStoragePolicy: .notAllowed)
            client?.urlProtocol(self, didLoad: reply.body)
            client?.urlProtocolDidFinishLoading(self)
        } catch {
            client?.urlProtocol(self, didFailWithError: error)
        }
    }

    override func stopLoading() {}

    /// URLSession moves `httpBody` into `httpBodyStream` before a protocol sees the request.
    private static func body(of request: URLRequest) -> Data? {
        if let body = request.httpBody { return body }
        guard let stream = request.httpBodyStream else { return nil }
        stream.open()
        defer { stream.close() }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while stream.hasBytesAvailable {
            let count = stream.read(&buffer, maxLength: buffer.count)
            if count <= 0 { break }
            data.append(buffer, count: count)
        }
        return data
    }
}

/// Plays Strava: reads the authorize URL it is given and redirects as `reply` says.
@MainActor
final class FakeAuthenticator: WebAuthenticator {
    enum Reply {
        case consent(scope: String)
        case deny
        case redirect(String)
        case cancel
    }

    let reply: Reply
    private(set) var openedURLs: [URL] = []
    private(set) var schemes: [String] = []

    init(_ reply: Reply) {
        self.reply = reply
    }

    func authenticate(url: URL, callbackURLScheme: String) async throws -> URL {
        openedURLs.append(url)
        schemes.append(callbackURLScheme)
        let query = URLComponents(url: url, resolvingAgainstBaseURL: false)?.queryItems ?? []
        let state = query.first { $0.name == "state" }?.value ?? ""
        switch reply {
        case let .consent(scope):
            return try XCTUnwrap(URL(string: "coachai://oauth/strava?state=\(state)&code=strava-code-123&scope=\(scope)"))
        case .deny:
            return try XCTUnwrap(URL(string: "coachai://oauth/strava?state=\(state)&error=access_denied"))
        case let .redirect(text):
            return try XCTUnwrap(URL(string: text))
        case .cancel:
            throw WebAuthenticationError.cancelled
        }
    }
}

enum Fixtures {
    static func data(_ name: String) throws -> Data {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures"),
            "missing fixture \(name).json"
        )
        return try Data(contentsOf: url)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        try APIJSON.decoder().decode(type, from: data(name))
    }

    /// The fixture read without the app's types, to compare the decoded values with. The fixtures
    /// are real server responses (regenerated by the Linux CI), so ids and times vary.
    static func object(_ name: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data(name)) as? [String: Any])
    }
}

private let baseURL = URL(string: "https://api.coachgeorge.test")!

private func utc(_ text: String) -> Date {
    APIJSON.parseDate(text)!
}

// MARK: - PKCE

final class PKCETests: XCTestCase {
    func testChallengeMatchesRFC7636AppendixB() throws {
        // RFC 7636 Appendix B: these 32 octets, base64url, are the verifier; its S256 challenge.
        let octets: [UInt8] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
            22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ]
        let verifier = PKCE.base64URLEncoded(Data(octets))
        XCTAssertEqual(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        XCTAssertEqual(PKCE.challenge(for: verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        XCTAssertEqual(try PKCEPair(verifier: verifier).challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    func testGeneratedVerifierIs64Base64URLCharacters() throws {
        let pair = try PKCEPair.generate()
        XCTAssertEqual(pair.verifier.count, 64)
        XCTAssertTrue(pair.verifier.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        XCTAssertEqual(pair.challenge, PKCE.challenge(for: pair.verifier))
        XCTAssertEqual(pair.method, "S256")
    }

    func testGeneratedVerifiersDiffer() throws {
        let verifiers = try (0..<20).map { _ in try PKCE.makeVerifier() }
        XCTAssertEqual(Set(verifiers).count, verifiers.count)
    }

    func testChallengeIsBase64URLWithoutPadding() throws {
        let challenge = try PKCEPair.generate().challenge
        XCTAssertEqual(challenge.count, 43)
        XCTAssertFalse(challenge.contains("="))
        XCTAssertFalse(challenge.contains("+"))
        XCTAssertFalse(challenge.contains("/"))
        XCTAssertEqual(PKCE.base64URLEncoded(Data([0xFB, 0xFF])), "-_8")
    }

    func testVerifierOutsideRFCLengthsIsRejected() {
        XCTAssertThrowsError(try PKCEPair(verifier: String(repeating: "a", count: 42)))
        XCTAssertThrowsError(try PKCEPair(verifier: String(repeating: "a", count: 129)))
        XCTAssertThrowsError(try PKCEPair(verifier: String(repeating: "a", count: 42) + "!"))
        XCTAssertNoThrow(try PKCEPair(verifier: String(repeating: "a", count: 43)))
    }

    func testDescriptionHidesTheVerifier() throws {
        let pair = try PKCEPair.generate()
        XCTAssertFalse(String(describing: pair).contains(pair.verifier))
    }
}

// MARK: - Callback URL

final class CallbackParsingTests: XCTestCase {
    private let redirect = "coachai://oauth/strava"

    private func parse(_ text: String, state: String = "state-1") throws -> StravaCallback {
        try StravaCallback.parse(XCTUnwrap(URL(string: text)), expectedState: state, redirectURI: redirect)
    }

    private func assertFails(_ text: String, with expected: CallbackError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(text), file: file, line: line) { error in
            XCTAssertEqual(error as? CallbackError, expected, file: file, line: line)
        }
    }

    func testConsentGivesCodeAndGrantedScope() throws {
        let callback = try parse("coachai://oauth/strava?state=state-1&code=abc123&scope=read,activity:read_all")
        XCTAssertEqual(callback, .authorized(code: "abc123", scope: "read,activity:read_all"))
    }

    func testConsentWithoutScopeGivesEmptyScope() throws {
        XCTAssertEqual(try parse("coachai://oauth/strava?state=state-1&code=abc123"), .authorized(code: "abc123", scope: ""))
    }

    func testAccessDeniedIsADenial() throws {
        XCTAssertEqual(try parse("coachai://oauth/strava?state=state-1&error=access_denied"), .denied(error: "access_denied"))
    }

    func testMissingStateIsRejected() {
        assertFails("coachai://oauth/strava?code=abc123&scope=read", with: .missingState)
        assertFails("coachai://oauth/strava?state=&code=abc123&scope=read", with: .missingState)
        assertFails("coachai://oauth/strava?error=access_denied", with: .missingState)
    }

    func testMismatchedStateIsRejectedEvenForADenial() {
        assertFails("coachai://oauth/strava?state=other&code=abc123&scope=read", with: .stateMismatch)
        assertFails("coachai://oauth/strava?state=other&error=access_denied", with: .stateMismatch)
    }

    func testJunkURLsAreRejected() {
        assertFails("https://evil.example/oauth/strava?state=state-1&code=abc123", with: .notACallback)
        assertFails("coachai://elsewhere/strava?state=state-1&code=abc123", with: .notACallback)
        assertFails("coachai://oauth/other?state=state-1&code=abc123", with: .notACallback)
        assertFails("coachai://oauth/strava?state=state-1&state=state-1&code=abc123", with: .notACallback)
        assertFails("coachai://oauth/strava?state=state-1", with: .missingCode)
        assertFails("coachai://oauth/strava?state=state-1&code=", with: .missingCode)
    }

    func testDescriptionHidesTheCode() throws {
        let callback = try parse("coachai://oauth/strava?state=state-1&code=abc123&scope=read")
        XCTAssertFalse(String(describing: callback).contains("abc123"))
    }
}

// MARK: - Requests

final class RequestBuildingTests: XCTestCase {
    private let builder = StravaAPIRequestBuilder(baseURL: baseURL)

    func testEndpointsAreTheContractsPaths() {
        XCTAssertEqual(Endpoint.linkToken, Endpoint(method: .post, path: "/api/v1/strava/link-token"))
        XCTAssertEqual(Endpoint.callback, Endpoint(method: .post, path: "/api/v1/strava/callback"))
        XCTAssertEqual(Endpoint.status, Endpoint(method: .get, path: "/api/v1/strava/status"))
        XCTAssertEqual(Endpoint.sync, Endpoint(method: .post, path: "/api/v1/strava/sync"))
        XCTAssertEqual(Endpoint.unlink, Endpoint(method: .delete, path: "/api/v1/strava/link"))
        XCTAssertEqual(Endpoint.trainingLoad, Endpoint(method: .get, path: "/api/v1/training/load"))
    }

    func testLinkTokenRequestHasMethodPathHeadersAndContractKeys() throws {
        let body = try APIJSON.encoder().encode(
            LinkTokenRequest(codeChallenge: "challenge", redirectURI: "coachai://oauth/strava")
        )
        let request = builder.makeRequest(.linkToken, bearerToken: "runner-token", body: body)
        XCTAssertEqual(request.httpMethod, "POST")
        XCTAssertEqual(request.url?.absoluteString, "https://api.coachgeorge.test/api/v1/strava/link-token")
        XCTAssertEqual(request.value(forHTTPHeaderField: "Authorization"), "Bearer runner-token")
        XCTAssertEqual(request.value(forHTTPHeaderField: "Content-Type"), "application/json")
        XCTAssertEqual(request.value(forHTTPHeaderField: "Accept"), "application/json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: XCTUnwrap(request.httpBody)) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["code_challenge", "code_challenge_method", "redirect_uri"])
        XCTAssertEqual(json["code_challenge_method"] as? String, "S256")
        XCTAssertEqual(json["redirect_uri"] as? String, "coachai://oauth/strava")
    }

    func testRedirectURIIsLeftOutWhenNil() throws {
        let body = try APIJSON.encoder().encode(LinkTokenRequest(codeChallenge: "challenge", redirectURI: nil))
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: body) as? [String: Any])
        XCTAssertEqual(Set(json.keys), ["code_challenge", "code_challenge_method"])
    }

    func testCallbackBodiesHaveTheContractsKeys() throws {
        let authorized = try APIJSON.encoder().encode(
            CallbackRequest.authorized(state: "s", code: "c", scope: "read", codeVerifier: "v")
        )
        let denied = try APIJSON.encoder().encode(
            CallbackRequest.denied(state: "s", error: "access_denied", codeVerifier: "v")
        )
        let authorizedKeys = try XCTUnwrap(JSONSerialization.jsonObject(with: authorized) as? [String: Any]).keys
        let deniedKeys = try XCTUnwrap(JSONSerialization.jsonObject(with: denied) as? [String: Any]).keys
        XCTAssertEqual(Set(authorizedKeys), ["state", "code", "scope", "code_verifier"])
        XCTAssertEqual(Set(deniedKeys), ["state", "error", "code_verifier"])
    }

    func testStatusAndUnlinkHaveNoBody() {
        let status = builder.makeRequest(.status, bearerToken: "t")
        XCTAssertEqual(status.httpMethod, "GET")
        XCTAssertNil(status.httpBody)
        XCTAssertNil(status.value(forHTTPHeaderField: "Content-Type"))
        let unlink = builder.makeRequest(.unlink, bearerToken: "t")
        XCTAssertEqual(unlink.httpMethod, "DELETE")
        XCTAssertEqual(unlink.url?.path, "/api/v1/strava/link")
    }

    func testBaseURLPathIsKept() {
        let builder = StravaAPIRequestBuilder(baseURL: URL(string: "https://example.test/coach/")!)
        XCTAssertEqual(builder.url(for: .status).absoluteString, "https://example.test/coach/api/v1/strava/status")
    }

    func testSyncBodyIsAnEmptyObject() throws {
        XCTAssertEqual(String(decoding: try APIJSON.encoder().encode(SyncRequest()), as: UTF8.self), "{}")
    }
}

// MARK: - Decoding the contract's documents

final class DecodingTests: XCTestCase {
    /// Linked, after the first sync succeeded.
    func testLinkedStatus() throws {
        let status = try Fixtures.decode(StravaStatus.self, "status_linked")
        let raw = try Fixtures.object("status_linked")
        let rawAthlete = try XCTUnwrap(raw["athlete"] as? [String: Any])
        let rawSync = try XCTUnwrap(raw["sync"] as? [String: Any])
        XCTAssertEqual(status.status, .linked)
        XCTAssertEqual(status.athlete?.id, (rawAthlete["id"] as? NSNumber)?.int64Value)
        XCTAssertEqual(status.athlete?.displayName, "Jane D.")
        XCTAssertEqual(status.scopes, ["read", "activity:read_all"])
        let linkedAt = try XCTUnwrap(raw["linked_at"] as? String)
        XCTAssertEqual(status.linkedAt, APIJSON.parseDate(linkedAt))
        XCTAssertEqual(status.sync.state, .idle)
        XCTAssertEqual(status.sync.lastResult, .ok)
        XCTAssertEqual(status.sync.workoutsInWindow, (rawSync["workouts_in_window"] as? NSNumber)?.intValue)
        XCTAssertGreaterThan(status.sync.workoutsInWindow, 0)
        let lastSync = try XCTUnwrap(status.sync.lastSyncAt)
        XCTAssertEqual(status.sync.lastSuccessAt, lastSync)
        XCTAssertNotNil(status.sync.nextSyncAt)
        XCTAssertNil(status.error)
    }

    func testNotLinkedStatus() throws {
        let status = try Fixtures.decode(StravaStatus.self, "status_not_linked")
        XCTAssertEqual(status.status, .notLinked)
        XCTAssertNil(status.athlete)
        XCTAssertEqual(status.scopes, [])
        XCTAssertNil(status.linkedAt)
        XCTAssertNil(status.sync.lastSyncAt)
        XCTAssertNil(status.sync.lastResult)
        XCTAssertEqual(status.sync.workoutsInWindow, 0)
        XCTAssertFalse(StravaConnectionSummary(status: status).isLinked)
    }

    func testActionRequiredStatus() throws {
        let status = try Fixtures.decode(StravaStatus.self, "status_action_required")
        XCTAssertEqual(status.status, .actionRequired)
        let error = try XCTUnwrap(status.error)
        // What the server says after Strava refused the token (the app was removed on Strava).
        XCTAssertEqual(error.code, "reauth_required")
        XCTAssertEqual(error.action, .reconnect)
        XCTAssertNil(error.retryAt)
        XCTAssertEqual(status.sync.lastResult, .failed)
        let summary = StravaConnectionSummary(status: status)
        XCTAssertEqual(summary.connection, .needsAttention(athlete: "Jane D."))
        XCTAssertEqual(summary.problem?.action, .reconnect)
        XCTAssertEqual(summary.problem?.message, error.message)
    }

    func testLinkToken() throws {
        let token = try Fixtures.decode(LinkTokenResponse.self, "link_token")
        XCTAssertFalse(token.state.isEmpty)
        // https on Strava; the fixture comes from the sandbox emulator, which serves http.
        XCTAssertTrue(["http", "https"].contains(token.authorizeURL.scheme ?? ""))
        let query = URLComponents(url: token.authorizeURL, resolvingAgainstBaseURL: false)?.queryItems ?? []
        XCTAssertEqual(query.first(where: { $0.name == "state" })?.value, token.state)
        XCTAssertEqual(query.first(where: { $0.name == "redirect_uri" })?.value, token.redirectURI)
        XCTAssertEqual(token.redirectURI, "coachai://oauth/strava")
        let raw = try Fixtures.object("link_token")
        let expiresAt = try XCTUnwrap(raw["expires_at"] as? String)
        XCTAssertEqual(token.expiresAt, APIJSON.parseDate(expiresAt))
        XCTAssertFalse(String(describing: token).contains(token.state))
    }

    func testSyncQueued() throws {
        let queued = try Fixtures.decode(SyncQueuedResponse.self, "sync_queued")
        let raw = try Fixtures.object("sync_queued")
        let syncRunID = try XCTUnwrap(raw["sync_run_id"] as? String)
        XCTAssertEqual(queued.syncRunID, UUID(uuidString: syncRunID))
        XCTAssertEqual(queued.state, .queued)
    }

    func testErrorBody() throws {
        let body = try Fixtures.decode(APIError.self, "error")
        XCTAssertEqual(body.error, "profile_required")
        XCTAssertFalse(body.message.isEmpty)
    }

    func testTrainingLoad() throws {
        let document = try Fixtures.decode(TrainingLoadDocument.self, "training_load")
        let raw = try Fixtures.object("training_load")
        XCTAssertEqual(document.windowDays, raw["window_days"] as? Int)
        XCTAssertEqual(document.days.count, (raw["days"] as? [Any])?.count)
        XCTAssertEqual(document.days.last?.date, (raw["current"] as? [String: Any])?["date"] as? String)
        let methods = Set(document.days.flatMap { $0.workouts.map(\.method) })
        XCTAssertEqual(methods, [.heartRate, .pace, .power, .duration])
        XCTAssertTrue(document.current.provisional)
        XCTAssertEqual(document.current.flags.count, 5)
        XCTAssertFalse(document.current.flags.contains { $0.code == .unknown || $0.comparison == .unknown })
        XCTAssertFalse(document.current.sentences.isEmpty)
        XCTAssertEqual(document.physiology.maxHR.source, .profile)
        XCTAssertEqual(document.physiology.sex, .female)
    }

    func testUnknownEnumValuesAndExtraFieldsDoNotBreakDecoding() throws {
        let json = """
        {"status": "paused", "athlete": null, "scopes": [], "linked_at": null, "new_field": 1,
         "sync": {"state": "throttled", "last_sync_at": null, "last_success_at": null,
                  "last_result": "skipped", "next_sync_at": null, "workouts_in_window": 0},
         "error": {"code": "brand_new", "message": "New.", "action": "call_us"}}
        """
        let status = try APIJSON.decoder().decode(StravaStatus.self, from: Data(json.utf8))
        XCTAssertEqual(status.status, .unknown)
        XCTAssertEqual(status.sync.state, .unknown)
        XCTAssertEqual(status.sync.lastResult, .unknown)
        XCTAssertEqual(status.error?.action, .unknown)
        XCTAssertNil(status.error?.retryAt)
    }

    func testTimestampForms() throws {
        XCTAssertEqual(utc("2026-11-24T10:00:00Z"), Date(timeIntervalSince1970: 1_795_514_400))
        XCTAssertEqual(APIJSON.parseDate("2026-11-24T10:00:00+00:00"), utc("2026-11-24T10:00:00Z"))
        XCTAssertEqual(APIJSON.parseDate("2026-11-24T11:00:00+01:00"), utc("2026-11-24T10:00:00Z"))
        XCTAssertEqual(APIJSON.parseDate("2026-11-24T10:00:00"), utc("2026-11-24T10:00:00Z"))
        XCTAssertEqual(APIJSON.parseDate("2026-11-24T10:00:00.5Z"), utc("2026-11-24T10:00:00Z").addingTimeInterval(0.5))
        XCTAssertNil(APIJSON.parseDate("yesterday"))
        XCTAssertNil(APIJSON.parseDate("2026-11-24T10:00:00.Z"))
        let micro = try XCTUnwrap(APIJSON.parseDate("2026-11-24T10:05:12.345678Z"))
        XCTAssertEqual(micro.timeIntervalSince(utc("2026-11-24T10:05:12Z")), 0.345678, accuracy: 0.000_01)
    }

    func testAthleteDisplayName() {
        XCTAssertEqual(StravaStatus.Athlete(id: 1, firstname: "Jane", lastname: "Doe").displayName, "Jane D.")
        XCTAssertEqual(StravaStatus.Athlete(id: 1, firstname: "Jane", lastname: nil).displayName, "Jane")
        XCTAssertEqual(StravaStatus.Athlete(id: 7, firstname: " ", lastname: "").displayName, "Athlete 7")
    }
}

// MARK: - Error codes

final class ErrorMappingTests: XCTestCase {
    /// docs/contract.md §3, in order.
    static let contractCodes = [
        "unauthenticated", "invalid_request", "profile_required", "redirect_uri_not_allowed",
        "invalid_state", "state_expired", "pkce_mismatch", "access_denied", "insufficient_scope",
        "athlete_already_linked", "not_linked", "reauth_required", "revoked", "rate_limited",
        "strava_unavailable", "sync_failed", "key_unavailable", "sync_in_progress", "not_found",
    ]
    /// Codes the server emits beyond docs/contract.md §3 (the Linux CI reads them from the server).
    static let serverOnlyCodes = [
        "service_unavailable", "internal_error", "payload_too_large", "strava_athlete_limit",
    ]

    func testEveryContractCodeHasItsOwnWords() {
        let fallback = StravaErrorCatalog.presentation(forCode: "no_such_code", serverMessage: "server words")
        for code in Self.contractCodes + Self.serverOnlyCodes {
            let presentation = StravaErrorCatalog.presentation(forCode: code, serverMessage: "server words")
            XCTAssertEqual(presentation.code, code)
            XCTAssertNotEqual(presentation.title, fallback.title, code)
            XCTAssertNotEqual(presentation.message, "server words", code)
        }
    }

    func testActions() {
        let retryAt = utc("2026-11-24T11:15:00Z")
        func action(_ code: String) -> ErrorAction {
            StravaErrorCatalog.presentation(forCode: code, retryAt: retryAt).action
        }
        XCTAssertEqual(action("access_denied"), .tryAgain)
        XCTAssertEqual(action("state_expired"), .tryAgain)
        XCTAssertEqual(action("invalid_state"), .tryAgain)
        XCTAssertEqual(action("pkce_mismatch"), .tryAgain)
        XCTAssertEqual(action("sync_failed"), .tryAgain)
        XCTAssertEqual(action("insufficient_scope"), .reconnect)
        XCTAssertEqual(action("reauth_required"), .reconnect)
        XCTAssertEqual(action("revoked"), .reconnect)
        XCTAssertEqual(action("not_linked"), .reconnect)
        XCTAssertEqual(action("rate_limited"), .waitUntil(retryAt))
        XCTAssertEqual(action("strava_unavailable"), .waitUntil(retryAt))
        XCTAssertEqual(action("service_unavailable"), .waitUntil(retryAt))
        XCTAssertEqual(action("profile_required"), .none)
        XCTAssertEqual(action("key_unavailable"), .none)
        XCTAssertEqual(action("athlete_already_linked"), .none)
        XCTAssertEqual(action("strava_athlete_limit"), .none)
    }

    func testUnknownCodeShowsTheServersMessage() {
        let presentation = StravaErrorCatalog.presentation(forCode: "brand_new_code", serverMessage: "Back soon.")
        XCTAssertEqual(presentation.message, "Back soon.")
        XCTAssertEqual(presentation.action, .tryAgain)
    }

    func testStatusErrorKeepsTheServersMessageAndAction() {
        let error = StravaStatus.StatusError(
            code: "insufficient_scope", message: "Runs you keep private are missing.", action: .reconnect, retryAt: nil
        )
        XCTAssertEqual(error.presentation.message, "Runs you keep private are missing.")
        XCTAssertEqual(error.presentation.action, .reconnect)
        let wait = StravaStatus.StatusError(
            code: "rate_limited", message: "Busy.", action: .wait, retryAt: utc("2026-11-24T11:15:00Z")
        )
        XCTAssertEqual(wait.presentation.action, .waitUntil(utc("2026-11-24T11:15:00Z")))
        XCTAssertEqual(wait.presentation.action.retryDate, utc("2026-11-24T11:15:00Z"))
    }

    func testClientSideFailures() {
        XCTAssertEqual(StravaLinkError.callback(.stateMismatch).presentation.code, "invalid_state")
        XCTAssertEqual(StravaLinkError.callback(.missingState).presentation.code, "invalid_state")
        XCTAssertEqual(StravaLinkError.callback(.notACallback).presentation.action, .tryAgain)
        XCTAssertEqual(StravaLinkError.accessDenied.presentation.code, "access_denied")
        XCTAssertEqual(StravaLinkError.notSignedIn.presentation.code, "unauthenticated")
        XCTAssertEqual(StravaLinkError.network(code: URLError.Code.notConnectedToInternet.rawValue).presentation.code, "network_error")
        XCTAssertEqual(StravaLinkError(URLError(.timedOut)), .network(code: URLError.Code.timedOut.rawValue))
        XCTAssertEqual(StravaLinkError(CallbackError.missingCode), .callback(.missingCode))
    }
}

// MARK: - Networking through a URLProtocol stub

final class ServiceTests: XCTestCase {
    private var server: StubServer { StubURLProtocol.server }
    private let now = utc("2026-11-24T11:00:00Z")

    private func makeService(token: String? = "runner-token") -> StravaLinkService {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.protocolClasses = [StubURLProtocol.self]
        let fixedNow = now
        return StravaLinkService(
            baseURL: baseURL,
            tokenProvider: StaticTokenProvider(token: token),
            transport: URLSessionTransport(session: URLSession(configuration: configuration)),
            now: { fixedNow }
        )
    }

    func testStatusSendsTheBearerTokenAndDecodes() async throws {
        server.reset { _ in try .fixture(200, "status_linked") }
        let status = try await makeService().status()
        XCTAssertEqual(status.athlete?.displayName, "Jane D.")
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.method, "GET")
        XCTAssertEqual(request.url.path, "/api/v1/strava/status")
        XCTAssertEqual(request.header("Authorization"), "Bearer runner-token")
    }

    func testContractErrorBecomesAPIError() async throws {
        server.reset { _ in try .fixture(409, "error") }
        do {
            _ = try await makeService().createLinkToken(LinkTokenRequest(codeChallenge: "c", redirectURI: nil))
            XCTFail("expected profile_required")
        } catch let error as StravaLinkError {
            guard case let .api(status, body, _) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(status, 409)
            XCTAssertEqual(body.error, "profile_required")
            XCTAssertEqual(error.presentation.action, .none)
        }
    }

    func testRetryAfterBecomesTheWaitDate() async throws {
        server.reset { _ in
            .json(429, #"{"error": "rate_limited", "message": "Slow down."}"#, headers: ["Retry-After": "120"])
        }
        do {
            _ = try await makeService().requestSync()
            XCTFail("expected rate_limited")
        } catch let error as StravaLinkError {
            XCTAssertEqual(error.presentation.action, .waitUntil(now.addingTimeInterval(120)))
        }
    }

    func testServiceUnavailableWaitsForRetryAfter() async throws {
        server.reset { _ in
            .json(
                503, #"{"error": "service_unavailable", "message": "The service is temporarily unavailable."}"#,
                headers: ["Retry-After": "30"]
            )
        }
        do {
            _ = try await makeService().requestSync()
            XCTFail("expected service_unavailable")
        } catch let error as StravaLinkError {
            XCTAssertEqual(error.presentation.code, "service_unavailable")
            XCTAssertEqual(error.presentation.action, .waitUntil(now.addingTimeInterval(30)))
        }
    }

    func testNonContractErrorBody() async throws {
        server.reset { _ in StubReply(status: 502, headers: ["Content-Type": "text/html"], body: Data("<html>".utf8)) }
        do {
            _ = try await makeService().status()
            XCTFail("expected an error")
        } catch let error as StravaLinkError {
            XCTAssertEqual(error, .unexpectedResponse(status: 502))
        }
    }

    func testBodyThatIsNotTheContractIsInvalid() async throws {
        server.reset { _ in .json(200, #"{"status": 3}"#) }
        do {
            _ = try await makeService().status()
            XCTFail("expected an error")
        } catch let error as StravaLinkError {
            XCTAssertEqual(error, .invalidResponse)
        }
    }

    func testSyncPostsAnEmptyObject() async throws {
        server.reset { _ in try .fixture(202, "sync_queued") }
        let queued = try await makeService().requestSync()
        XCTAssertEqual(queued.state, .queued)
        let request = try XCTUnwrap(server.requests.first)
        XCTAssertEqual(request.method, "POST")
        XCTAssertEqual(request.url.path, "/api/v1/strava/sync")
        XCTAssertEqual(try request.jsonBody().count, 0)
    }

    func testUnlinkAccepts204() async throws {
        server.reset { _ in StubReply(status: 204, headers: [:]) }
        try await makeService().unlink()
        XCTAssertEqual(server.requests.first?.method, "DELETE")
        XCTAssertEqual(server.requests.first?.url.path, "/api/v1/strava/link")
    }

    func testNoTokenMeansNoRequest() async throws {
        server.reset { _ in try .fixture(200, "status_linked") }
        do {
            _ = try await makeService(token: nil).status()
            XCTFail("expected notSignedIn")
        } catch let error as StravaLinkError {
            XCTAssertEqual(error, .notSignedIn)
        }
        XCTAssertTrue(server.requests.isEmpty)
    }
}

// MARK: - The whole link flow

final class LinkFlowTests: XCTestCase {
    private var server: StubServer { StubURLProtocol.server }

    private func makeFlow() -> StravaLinkFlow {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.protocolClasses = [StubURLProtocol.self]
        let service = StravaLinkService(
            baseURL: baseURL,
            tokenProvider: StaticTokenProvider(token: "runner-token"),
            transport: URLSessionTransport(session: URLSession(configuration: configuration))
        )
        return StravaLinkFlow(service: service)
    }

    /// The backend: a link token for any challenge, the linked status for the callback.
    private func serveHappyBackend() {
        server.reset { request in
            switch request.url.path {
            case "/api/v1/strava/link-token": return try .fixture(201, "link_token")
            case "/api/v1/strava/callback": return try .fixture(200, "status_linked")
            default: return StubReply(status: 404)
            }
        }
    }

    @MainActor
    func testConsentLinksWithTheVerifierOfTheSentChallenge() async throws {
        serveHappyBackend()
        let strava = FakeAuthenticator(.consent(scope: "read,activity:read_all"))
        let outcome = await makeFlow().run(with: strava)

        guard case let .linked(status) = outcome else { return XCTFail("got \(outcome)") }
        XCTAssertEqual(status.athlete?.displayName, "Jane D.")
        XCTAssertEqual(strava.schemes, ["coachai"])
        let token = try Fixtures.decode(LinkTokenResponse.self, "link_token")
        XCTAssertEqual(strava.openedURLs.first, token.authorizeURL)

        let requests = server.requests
        XCTAssertEqual(requests.map(\.url.path), ["/api/v1/strava/link-token", "/api/v1/strava/callback"])
        let linkToken = try XCTUnwrap(requests.first).jsonBody()
        let callback = try XCTUnwrap(requests.last).jsonBody()
        XCTAssertEqual(linkToken["code_challenge_method"] as? String, "S256")
        XCTAssertEqual(linkToken["redirect_uri"] as? String, "coachai://oauth/strava")
        let verifier = try XCTUnwrap(callback["code_verifier"] as? String)
        XCTAssertEqual(verifier.count, 64)
        XCTAssertEqual(PKCE.challenge(for: verifier), linkToken["code_challenge"] as? String)
        XCTAssertEqual(callback["state"] as? String, token.state)
        XCTAssertEqual(callback["code"] as? String, "strava-code-123")
        XCTAssertEqual(callback["scope"] as? String, "read,activity:read_all")
        XCTAssertNil(callback["error"])
    }

    @MainActor
    func testClosingTheSheetIsNotAnError() async {
        serveHappyBackend()
        let outcome = await makeFlow().run(with: FakeAuthenticator(.cancel))
        XCTAssertEqual(outcome, .cancelled)
        XCTAssertEqual(server.requests.map(\.url.path), ["/api/v1/strava/link-token"])
    }

    @MainActor
    func testDenialIsReportedToTheBackendAndShownAsAccessDenied() async throws {
        server.reset { request in
            if request.url.path == "/api/v1/strava/link-token" { return try .fixture(201, "link_token") }
            return .json(400, #"{"error": "access_denied", "message": "Strava access was not granted."}"#)
        }
        let outcome = await makeFlow().run(with: FakeAuthenticator(.deny))
        XCTAssertEqual(outcome, .failed(.accessDenied))
        XCTAssertEqual(server.requests.map(\.url.path), ["/api/v1/strava/link-token", "/api/v1/strava/callback"])
        let callback = try XCTUnwrap(server.requests.last).jsonBody()
        XCTAssertEqual(Set(callback.keys), ["state", "error", "code_verifier"])
        XCTAssertEqual(callback["error"] as? String, "access_denied")
    }

    @MainActor
    func testRedirectForAnotherAttemptIsNeverPosted() async {
        serveHappyBackend()
        let strava = FakeAuthenticator(.redirect("coachai://oauth/strava?state=forged&code=evil&scope=read"))
        let outcome = await makeFlow().run(with: strava)
        XCTAssertEqual(outcome, .failed(.callback(.stateMismatch)))
        XCTAssertEqual(server.requests.map(\.url.path), ["/api/v1/strava/link-token"])
    }

    @MainActor
    func testBackendRefusalIsPassedOn() async throws {
        server.reset { request in
            if request.url.path == "/api/v1/strava/link-token" { return try .fixture(201, "link_token") }
            return .json(400, #"{"error": "insufficient_scope", "message": "Needs activity:read."}"#)
        }
        let outcome = await makeFlow().run(with: FakeAuthenticator(.consent(scope: "read")))
        guard case let .failed(error) = outcome else { return XCTFail("got \(outcome)") }
        XCTAssertEqual(error.presentation.code, "insufficient_scope")
        XCTAssertEqual(error.presentation.action, .reconnect)
    }

    @MainActor
    func testProfileRequiredStopsBeforeStrava() async {
        server.reset { _ in try .fixture(409, "error") }
        let strava = FakeAuthenticator(.consent(scope: "read"))
        let outcome = await makeFlow().run(with: strava)
        guard case let .failed(error) = outcome else { return XCTFail("got \(outcome)") }
        XCTAssertEqual(error.presentation.code, "profile_required")
        XCTAssertTrue(strava.openedURLs.isEmpty)
    }
}
