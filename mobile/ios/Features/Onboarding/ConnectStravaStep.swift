import StravaLinkService
import SwiftUI
#if canImport(UIKit)
import UIKit
#endif

// Onboarding step "Connect Strava" (Story 1.2). The flow itself (PKCE, link token, web
// authentication, callback) lives in the StravaLinkService package; this file is the app
// target's screen and its view model.

// MARK: - View model

@MainActor
final class ConnectStravaViewModel: ObservableObject {
    enum Phase: Equatable {
        case idle
        case connecting
        case linked(athleteName: String)
        case failed(ErrorPresentation)
    }

    @Published private(set) var phase: Phase = .idle
    /// The summary block, from `GET /api/v1/strava/status`.
    @Published private(set) var summary: StravaConnectionSummary?
    /// Loading the status or asking for a sync failed.
    @Published private(set) var summaryProblem: ErrorPresentation?
    @Published private(set) var isLoadingSummary = false
    @Published private(set) var isRequestingSync = false

    private let service: StravaLinkService
    private let flow: StravaLinkFlow
    private let authenticator: any WebAuthenticator

    init(service: StravaLinkService, authenticator: any WebAuthenticator) {
        self.service = service
        self.flow = StravaLinkFlow(service: service)
        self.authenticator = authenticator
    }

    var isConnecting: Bool { phase == .connecting }

    /// "Connect with Strava" (also "Try again" and "Reconnect").
    func connect() {
        guard !isConnecting else { return }
        phase = .connecting
        Task { await runLink() }
    }

    private func runLink() async {
        let outcome = await flow.run(with: authenticator)
        switch outcome {
        case let .linked(status):
            let name = status.athlete?.displayName ?? "your Strava account"
            phase = .linked(athleteName: name)
            summary = StravaConnectionSummary(status: status)
            summaryProblem = nil
            announce("Strava is connected. Linked as \(name).")
        case .cancelled:
            // Closing the Strava sheet is a choice, not an error.
            phase = .idle
        case let .failed(error):
            let problem = error.presentation
            phase = .failed(problem)
            announce("\(problem.title). \(problem.message)")
        }
    }

    /// The action button of a link error.
    func perform(_ action: ErrorAction) {
        switch action {
        case .tryAgain, .reconnect, .waitUntil:
            connect()
        case .none:
            phase = .idle
        }
    }

    /// The action button of the summary's error (from the status document).
    func performSummaryAction(_ action: ErrorAction) {
        switch action {
        case .reconnect:
            connect()
        case .tryAgain:
            Task { await syncNow() }
        case .waitUntil, .none:
            break
        }
    }

    func refreshStatus() async {
        isLoadingSummary = true
        defer { isLoadingSummary = false }
        do {
            let status = try await service.status()
            summary = StravaConnectionSummary(status: status)
            summaryProblem = nil
        } catch is CancellationError {
            return
        } catch {
            summaryProblem = StravaLinkError(error).presentation
        }
    }

    func syncNow() async {
        guard !isRequestingSync else { return }
        isRequestingSync = true
        defer { isRequestingSync = false }
        do {
            _ = try await service.requestSync()
            await refreshStatus()
        } catch is CancellationError {
            return
        } catch {
            summaryProblem = StravaLinkError(error).presentation
        }
    }

    /// While a sync is queued or running, look again every 5 s (for up to 2 minutes).
    func pollWhileSyncing() async {
        var polls = 0
        while summary?.isSyncing == true, polls < 24 {
            try? await Task.sleep(nanoseconds: 5_000_000_000)
            if Task.isCancelled { return }
            await refreshStatus()
            polls += 1
        }
    }

    private func announce(_ text: String) {
        #if canImport(UIKit)
        UIAccessibility.post(notification: .announcement, argument: text)
        #endif
    }
}

// MARK: - Screen

@MainActor
struct ConnectStravaStep: View {
    @StateObject private var model: ConnectStravaViewModel
    private let onContinue: () -> Void
    private let onSkip: () -> Void

    init(
        model: @autoclosure @escaping () -> ConnectStravaViewModel,
        onContinue: @escaping () -> Void,
        onSkip: @escaping () -> Void
    ) {
        _model = StateObject(wrappedValue: model())
        self.onContinue = onContinue
        self.onSkip = onSkip
    }

    var body: some View {
        ScrollView {
            VStack(alignment: .leading, spacing: 24) {
                header
                linkSection
                summarySection
            }
            .padding(24)
            .frame(maxWidth: .infinity, alignment: .leading)
        }
        .task { await model.refreshStatus() }
        .task(id: model.summary?.isSyncing ?? false) { await model.pollWhileSyncing() }
    }

    private var header: some View {
        VStack(alignment: .leading, spacing: 12) {
            Text("Connect Strava")
                .font(.largeTitle.bold())
                .accessibilityAddTraits(.isHeader)
            Text("Coach George reads your activities from the last 28 days, so your plan reflects your real training.")
                .font(.body)
            Text("We only read: nothing is posted to Strava, and you can disconnect at any time.")
                .font(.footnote)
                .foregroundColor(.secondary)
        }
    }

    @ViewBuilder
    private var linkSection: some View {
        switch model.phase {
        case .idle:
            if model.summary?.isLinked == true {
                Button("Continue", action: onContinue)
                    .buttonStyle(.borderedProminent)
                    .frame(maxWidth: .infinity)
            } else {
                ConnectWithStravaButton { model.connect() }
                skipButton
            }
        case .connecting:
            HStack(spacing: 12) {
                ProgressView()
                Text("Connecting to Strava…")
            }
            .frame(maxWidth: .infinity, minHeight: 48)
            .accessibilityElement(children: .combine)
            .accessibilityLabel("Connecting to Strava")
        case let .linked(athleteName):
            Label("Linked as \(athleteName)", systemImage: "checkmark.circle.fill")
                .font(.headline)
                .foregroundColor(.green)
                .accessibilityLabel("Strava is connected. Linked as \(athleteName).")
            Button("Continue", action: onContinue)
                .buttonStyle(.borderedProminent)
                .frame(maxWidth: .infinity)
        case let .failed(problem):
            ProblemView(problem: problem)
            linkActionButton(for: problem.action)
            skipButton
        }
    }

    @ViewBuilder
    private func linkActionButton(for action: ErrorAction) -> some View {
        switch action {
        case .tryAgain, .reconnect:
            // Every way into Strava's OAuth uses the "Connect with Strava" button (brand rules).
            ConnectWithStravaButton { model.perform(action) }
        case let .waitUntil(date):
            WaitingConnectButton(until: date) { model.perform(action) }
        case .none:
            EmptyView()
        }
    }

    private var skipButton: some View {
        Button("Skip for now", action: onSkip)
            .frame(maxWidth: .infinity)
            .accessibilityHint("Continue onboarding without Strava. You can connect it later.")
    }

    @ViewBuilder
    private var summarySection: some View {
        if let summary = model.summary {
            StravaSummaryCard(
                summary: summary,
                isRequestingSync: model.isRequestingSync,
                onAction: { action in model.performSummaryAction(action) }
            )
        } else if model.isLoadingSummary {
            ProgressView("Loading your Strava status…")
        }
        if let problem = model.summaryProblem {
            ProblemView(problem: problem)
            Button("Try again") {
                Task { await model.refreshStatus() }
            }
            .buttonStyle(.bordered)
        }
    }
}

// MARK: - Pieces

/// Strava's colours (docs/strava.md §6). Swap in Strava's official "Connect with Strava" artwork
/// (and add "Powered by Strava") from the brand kit before release.
enum StravaBrand {
    /// #FC5200, Strava's current orange (#FC4C02 in the 2016 guidelines).
    static let orange = Color(red: 252.0 / 255.0, green: 82.0 / 255.0, blue: 0.0)
}

@MainActor
struct ConnectWithStravaButton: View {
    var isEnabled = true
    let action: () -> Void

    var body: some View {
        Button(action: action) {
            Text("Connect with Strava")
                .font(.system(size: 17, weight: .semibold))
                .foregroundColor(.white)
                .lineLimit(1)
                .minimumScaleFactor(0.8)
                .frame(maxWidth: .infinity, minHeight: 48, maxHeight: 48)
                .background(StravaBrand.orange.opacity(isEnabled ? 1 : 0.5))
                .clipShape(RoundedRectangle(cornerRadius: 6, style: .continuous))
        }
        .buttonStyle(.plain)
        .disabled(!isEnabled)
        .accessibilityLabel("Connect with Strava")
        .accessibilityHint("Opens Strava so you can let Coach George read your activities of the last 28 days.")
    }
}

/// "Connect with Strava", disabled until Strava lets us try again.
@MainActor
struct WaitingConnectButton: View {
    let until: Date?
    let action: () -> Void

    var body: some View {
        TimelineView(.periodic(from: .now, by: 5)) { context in
            let waiting = until.map { $0 > context.date } ?? false
            VStack(alignment: .leading, spacing: 8) {
                if let until, waiting {
                    Text("You can try again after \(until.formatted(date: .omitted, time: .shortened)).")
                        .font(.footnote)
                }
                ConnectWithStravaButton(isEnabled: !waiting, action: action)
            }
        }
    }
}

@MainActor
struct ProblemView: View {
    let problem: ErrorPresentation

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            Label(problem.title, systemImage: "exclamationmark.triangle.fill")
                .font(.headline)
                .foregroundColor(.primary)
            Text(problem.message)
                .font(.body)
            if let date = problem.action.retryDate {
                Text("Coach George will try again after \(date.formatted(date: .omitted, time: .shortened)).")
                    .font(.footnote)
                    .foregroundColor(.secondary)
            }
        }
        .padding(16)
        .frame(maxWidth: .infinity, alignment: .leading)
        .background(RoundedRectangle(cornerRadius: 12).fill(Color.orange.opacity(0.12)))
        .accessibilityElement(children: .combine)
        .accessibilityLabel("Problem: \(problem.title). \(problem.message)")
    }
}

@MainActor
struct StravaSummaryCard: View {
    let summary: StravaConnectionSummary
    let isRequestingSync: Bool
    let onAction: (ErrorAction) -> Void

    var body: some View {
        VStack(alignment: .leading, spacing: 8) {
            Text("Your Strava summary")
                .font(.headline)
                .accessibilityAddTraits(.isHeader)
            Text(summary.headline)
            if summary.isLinked {
                TimelineView(.periodic(from: .now, by: 30)) { context in
                    Text(lastSyncLine(now: context.date))
                        .foregroundColor(.secondary)
                }
                if summary.isSyncing {
                    HStack(spacing: 8) {
                        ProgressView()
                        Text("Syncing your activities…")
                    }
                    .accessibilityElement(children: .combine)
                }
                Text(summary.workoutsLine())
                    .foregroundColor(.secondary)
            }
            if let problem = summary.problem {
                ProblemView(problem: problem)
                summaryActionButton(for: problem.action)
            }
        }
        .padding(16)
        .frame(maxWidth: .infinity, alignment: .leading)
        .background(RoundedRectangle(cornerRadius: 12).stroke(Color.secondary.opacity(0.3)))
        .accessibilityElement(children: .contain)
    }

    @ViewBuilder
    private func summaryActionButton(for action: ErrorAction) -> some View {
        switch action {
        case .tryAgain:
            Button(isRequestingSync ? "Syncing…" : "Sync now") { onAction(action) }
                .buttonStyle(.bordered)
                .disabled(isRequestingSync)
                .accessibilityHint("Reads your recent activities from Strava again.")
        case .reconnect:
            ConnectWithStravaButton { onAction(action) }
        case .waitUntil, .none:
            EmptyView()
        }
    }

    private func lastSyncLine(now: Date) -> String {
        guard let last = summary.lastSyncAt else {
            return summary.isSyncing ? "First sync in progress" : "Not synced yet"
        }
        return "Last synced \(RelativeTime.string(for: last, now: now))"
    }
}

enum RelativeTime {
    /// "just now", "5 minutes ago", "2 hours ago", "yesterday".
    static func string(for date: Date, now: Date) -> String {
        if abs(date.timeIntervalSince(now)) < 45 { return "just now" }
        let formatter = RelativeDateTimeFormatter()
        formatter.unitsStyle = .full
        formatter.dateTimeStyle = .named
        return formatter.localizedString(for: date, relativeTo: now)
    }
}

#if canImport(UIKit)
/// The key window, to present the Strava sheet from.
@MainActor
enum KeyWindow {
    static func current() -> UIWindow {
        let scenes = UIApplication.shared.connectedScenes.compactMap { $0 as? UIWindowScene }
        let windows = scenes.flatMap { $0.windows }
        return windows.first { $0.isKeyWindow } ?? windows.first ?? UIWindow()
    }
}

extension ConnectStravaViewModel {
    /// The app's wiring: the real API, and `ASWebAuthenticationSession` over the key window.
    static func live(baseURL: URL, tokenProvider: any TokenProvider) -> ConnectStravaViewModel {
        ConnectStravaViewModel(
            service: StravaLinkService(baseURL: baseURL, tokenProvider: tokenProvider),
            authenticator: SystemWebAuthenticator(anchor: { KeyWindow.current() })
        )
    }
}
#endif
