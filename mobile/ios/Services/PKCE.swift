import Foundation
#if canImport(CryptoKit)
import CryptoKit
#else
import Crypto // swift-crypto: CryptoKit's API on Linux
#endif
#if canImport(Security)
import Security
#endif

/// PKCE (RFC 7636) between the app and Coach George's backend (docs/contract.md §2).
///
/// Strava itself does not check PKCE: the backend holds the client secret and talks to Strava.
/// The pair binds the callback to the app session that asked for the link token: the challenge
/// goes out with `POST /api/v1/strava/link-token`, the verifier with `POST /api/v1/strava/callback`.
public enum PKCE {
    /// The only method the backend accepts.
    public static let method = "S256"
    /// Characters in a generated verifier: 48 random bytes in base64url (RFC 7636 allows 43-128).
    public static let verifierLength = 64

    private static let unreserved = Set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )

    /// A fresh verifier: 48 bytes from the system's secure random source, base64url (64 chars).
    public static func makeVerifier() throws -> String {
        try base64URLEncoded(Data(randomBytes(count: 48)))
    }

    /// `BASE64URL(SHA256(ASCII(verifier)))`, without padding.
    public static func challenge(for verifier: String) -> String {
        base64URLEncoded(Data(SHA256.hash(data: Data(verifier.utf8))))
    }

    /// Base64 with the URL-safe alphabet (`-` and `_`) and no `=` padding (RFC 4648 §5).
    public static func base64URLEncoded(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// 43 to 128 characters from RFC 7636's unreserved set.
    public static func isValidVerifier(_ verifier: String) -> Bool {
        (43...128).contains(verifier.count) && verifier.allSatisfy { unreserved.contains($0) }
    }

    static func randomBytes(count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        #if canImport(Security)
        let status = SecRandomCopyBytes(kSecRandomDefault, count, &bytes)
        guard status == errSecSuccess else { throw PKCEError.randomUnavailable(status: status) }
        #else
        // Linux (swift test in CI containers): the standard library's generator is a CSPRNG there.
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices {
            bytes[index] = UInt8.random(in: UInt8.min...UInt8.max, using: &generator)
        }
        #endif
        return bytes
    }
}

public enum PKCEError: Error, Equatable, Sendable {
    case randomUnavailable(status: Int32)
    case invalidVerifier
}

/// A verifier and its S256 challenge. The verifier lives only in memory for one link attempt.
public struct PKCEPair: Equatable, Sendable {
    public let verifier: String
    public let challenge: String
    public var method: String { PKCE.method }

    public init(verifier: String) throws {
        guard PKCE.isValidVerifier(verifier) else { throw PKCEError.invalidVerifier }
        self.verifier = verifier
        self.challenge = PKCE.challenge(for: verifier)
    }

    public static func generate() throws -> PKCEPair {
        try PKCEPair(verifier: PKCE.makeVerifier())
    }
}

extension PKCEPair: CustomStringConvertible, CustomDebugStringConvertible {
    // The verifier is a secret until the callback is done: keep it out of logs and crash reports.
    public var description: String { "PKCEPair(verifier: <redacted>, challenge: \(challenge))" }
    public var debugDescription: String { description }
}
