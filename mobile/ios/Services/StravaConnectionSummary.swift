import Foundation

/// The onboarding summary's Strava block, from `GET /api/v1/strava/status`: connection status,
/// last sync and an actionable error. Plain values; the view formats the dates.
public struct StravaConnectionSummary: Equatable, Sendable {
    public enum Connection: Equatable, Sendable {
        case notConnected
        case connected(athlete: String)
        /// Linked, but nothing syncs until the runner acts (revoked, reauth, missing scope).
        case needsAttention(athlete: String?)
    }

    public let connection: Connection
    public let isSyncing: Bool
    public let lastSyncAt: Date?
    public let lastSuccessAt: Date?
    public let nextSyncAt: Date?
    public let workoutsInWindow: Int
    public let problem: ErrorPresentation?

    public init(status: StravaStatus) {
        let name = status.athlete?.displayName
        switch status.status {
        case .notLinked:
            connection = .notConnected
        case .actionRequired:
            connection = .needsAttention(athlete: name)
        case .linked, .unknown:
            if let name {
                connection = .connected(athlete: name)
            } else {
                connection = .needsAttention(athlete: nil)
            }
        }
        isSyncing = status.sync.state.isActive
        lastSyncAt = status.sync.lastSyncAt
        lastSuccessAt = status.sync.lastSuccessAt
        nextSyncAt = status.sync.nextSyncAt
        workoutsInWindow = status.sync.workoutsInWindow
        problem = status.error?.presentation
    }

    public var isLinked: Bool {
        if case .notConnected = connection { return false }
        return true
    }

    public var headline: String {
        switch connection {
        case .notConnected:
            return "Strava is not connected"
        case let .connected(athlete):
            return "Connected as \(athlete)"
        case let .needsAttention(athlete?):
            return "Connected as \(athlete), needs your attention"
        case .needsAttention(nil):
            return "Strava needs your attention"
        }
    }

    /// "17 activities from the last 28 days".
    public func workoutsLine(windowDays: Int = 28) -> String {
        let noun = workoutsInWindow == 1 ? "activity" : "activities"
        return "\(workoutsInWindow) \(noun) from the last \(windowDays) days"
    }
}
