import Foundation
#if canImport(AuthenticationServices)
import AuthenticationServices
#endif

/// Opens the authorize URL in a browser sheet and returns the URL Strava redirected to.
/// `SystemWebAuthenticator` is the real one; tests pass a fake.
public protocol WebAuthenticator {
    /// Throws `WebAuthenticationError.cancelled` when the runner closes the sheet.
    @MainActor
    func authenticate(url: URL, callbackURLScheme: String) async throws -> URL
}

public enum WebAuthenticationError: Error, Equatable, Sendable {
    /// The runner closed the sheet: the link step goes back to idle, no error is shown.
    case cancelled
    /// The session could not be started (no window to present from, another session showing).
    case couldNotStart
    /// The session failed for another reason.
    case failed
}

/// Resumes a continuation exactly once, whoever comes first: the session's completion handler,
/// a failure to start, or the task's cancellation (which may even come before the continuation
/// is installed).
final class ResumeOnce<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Value, Error>?
    private var early: Result<Value, Error>?
    private var finished = false

    /// Returns false when a result came first (the continuation is then resumed with it at once).
    func install(_ continuation: CheckedContinuation<Value, Error>) -> Bool {
        lock.lock()
        if let early {
            self.early = nil
            finished = true
            lock.unlock()
            continuation.resume(with: early)
            return false
        }
        self.continuation = continuation
        lock.unlock()
        return true
    }

    func resume(with result: Result<Value, Error>) {
        lock.lock()
        guard !finished else {
            lock.unlock()
            return
        }
        guard let continuation else {
            if early == nil { early = result }
            lock.unlock()
            return
        }
        self.continuation = nil
        finished = true
        lock.unlock()
        continuation.resume(with: result)
    }
}

#if canImport(AuthenticationServices)
/// `ASWebAuthenticationSession` for the link flow. Not ephemeral: a runner already signed in to
/// Strava in Safari is not asked for their password again (Strava shows its consent page anyway).
@MainActor
public final class SystemWebAuthenticator: WebAuthenticator {
    private let anchor: () -> ASPresentationAnchor
    private var session: ASWebAuthenticationSession?
    // The session holds its presentation context provider weakly: keep it alive here.
    private var context: PresentationContext?

    /// `anchor` gives the window to present the sheet from (the app's key window).
    public init(anchor: @escaping () -> ASPresentationAnchor) {
        self.anchor = anchor
    }

    public func authenticate(url: URL, callbackURLScheme: String) async throws -> URL {
        let once = ResumeOnce<URL>()
        let context = PresentationContext(anchor: anchor())
        self.context = context
        defer {
            // Closes the sheet if the task was cancelled while it was showing; no effect otherwise.
            session?.cancel()
            session = nil
            self.context = nil
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<URL, Error>) in
                guard once.install(continuation) else { return }
                let session = ASWebAuthenticationSession(
                    url: url, callbackURLScheme: callbackURLScheme
                ) { callbackURL, error in
                    if let callbackURL {
                        once.resume(with: .success(callbackURL))
                    } else if let error = error as? ASWebAuthenticationSessionError, error.code == .canceledLogin {
                        once.resume(with: .failure(WebAuthenticationError.cancelled))
                    } else {
                        once.resume(with: .failure(WebAuthenticationError.failed))
                    }
                }
                session.presentationContextProvider = context
                session.prefersEphemeralWebBrowserSession = false
                self.session = session
                if !session.start() {
                    once.resume(with: .failure(WebAuthenticationError.couldNotStart))
                }
            }
        } onCancel: {
            once.resume(with: .failure(CancellationError()))
        }
    }
}

final class PresentationContext: NSObject, ASWebAuthenticationPresentationContextProviding {
    private let anchor: ASPresentationAnchor

    init(anchor: ASPresentationAnchor) {
        self.anchor = anchor
    }

    func presentationAnchor(for session: ASWebAuthenticationSession) -> ASPresentationAnchor {
        anchor
    }
}
#endif
