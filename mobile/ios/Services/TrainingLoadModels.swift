import Foundation

// The training-load model (docs/training-load.md; docs/contract.md §3): GET /api/v1/training/load.
// As in StravaLinkModels.swift every JSON key is spelled out in `CodingKeys` (the Linux CI compares
// them with the server's OpenAPI schema) and unknown enum values decode as `.unknown`.
// Calendar dates ("2026-12-04", the runner's local day) stay strings: they are days, not instants.

extension Endpoint {
    /// → 200 `TrainingLoadDocument` for the last 28 days (the server's default `days`).
    public static let trainingLoad = Endpoint(method: .get, path: "/api/v1/training/load")
}

public struct TrainingLoadDocument: Codable, Equatable, Sendable {
    public var windowDays: Int
    /// The first day of complete history; days before it are unknown, not rest.
    public var historyStart: String
    /// Oldest first, ending today.
    public var days: [Day]
    public var current: LoadFigures
    public var physiology: Physiology

    enum CodingKeys: String, CodingKey {
        case windowDays = "window_days"
        case historyStart = "history_start"
        case days = "days"
        case current = "current"
        case physiology = "physiology"
    }

    public struct Day: Codable, Equatable, Sendable {
        public var date: String
        /// Load points: one hour at threshold is 100. 0 on a day without workouts.
        public var load: Double
        /// Fatigue: the 7-day exponentially weighted load.
        public var atl: Double
        /// Fitness: the 42-day exponentially weighted load.
        public var ctl: Double
        /// Fitness minus fatigue of the same day.
        public var form: Double
        /// Fewer than 42 days of history up to this day.
        public var provisional: Bool
        public var workouts: [WorkoutLoad]

        enum CodingKeys: String, CodingKey {
            case date = "date"
            case load = "load"
            case atl = "atl"
            case ctl = "ctl"
            case form = "form"
            case provisional = "provisional"
            case workouts = "workouts"
        }
    }

    public struct WorkoutLoad: Codable, Equatable, Sendable {
        public var workoutID: UUID
        public var sportType: String
        public var load: Double
        public var method: LoadMethod
        public var intensityFactor: Double?
        public var heartRateReserve: Double?
        /// Why a method was skipped or a value clamped, in plain words.
        public var notes: [String]

        enum CodingKeys: String, CodingKey {
            case workoutID = "workout_id"
            case sportType = "sport_type"
            case load = "load"
            case method = "method"
            case intensityFactor = "intensity_factor"
            case heartRateReserve = "heart_rate_reserve"
            case notes = "notes"
        }
    }

    public struct Physiology: Codable, Equatable, Sendable {
        public var sex: Sex?
        public var trimp: TrimpConstants
        public var maxHR: ResolvedValue
        public var restingHR: ResolvedValue
        public var thresholdHR: ResolvedValue
        public var thresholdSpeedMPS: ResolvedValue
        public var thresholdPaceSecondsPerKm: Double?
        public var ftpWatts: ResolvedValue

        enum CodingKeys: String, CodingKey {
            case sex = "sex"
            case trimp = "trimp"
            case maxHR = "max_hr"
            case restingHR = "resting_hr"
            case thresholdHR = "threshold_hr"
            case thresholdSpeedMPS = "threshold_speed_mps"
            case thresholdPaceSecondsPerKm = "threshold_pace_s_per_km"
            case ftpWatts = "ftp_w"
        }
    }

    public struct TrimpConstants: Codable, Equatable, Sendable {
        public var label: String
        public var a: Double
        public var b: Double

        enum CodingKeys: String, CodingKey {
            case label = "label"
            case a = "a"
            case b = "b"
        }
    }

    /// A physiology value and where it came from.
    public struct ResolvedValue: Codable, Equatable, Sendable {
        public var value: Double?
        public var source: ValueSource
        public var note: String

        enum CodingKeys: String, CodingKey {
            case value = "value"
            case source = "source"
            case note = "note"
        }
    }
}

/// Today's figures (also in the profile summary's `load`); `sentences` say them in plain words.
public struct LoadFigures: Codable, Equatable, Sendable {
    public var date: String
    public var atl: Double
    public var ctl: Double
    public var form: Double
    public var acwrRolling: Double?
    public var acwrEWMA: Double?
    public var monotony: Double?
    public var strain: Double?
    public var weeklyLoad: Double
    public var rampRate: Double?
    public var historyDays: Int
    public var provisional: Bool
    public var flags: [LoadFlag]
    public var sentences: [String]

    enum CodingKeys: String, CodingKey {
        case date = "date"
        case atl = "atl"
        case ctl = "ctl"
        case form = "form"
        case acwrRolling = "acwr_rolling"
        case acwrEWMA = "acwr_ewma"
        case monotony = "monotony"
        case strain = "strain"
        case weeklyLoad = "weekly_load"
        case rampRate = "ramp_rate"
        case historyDays = "history_days"
        case provisional = "provisional"
        case flags = "flags"
        case sentences = "sentences"
    }

    /// A flag with its threshold: raised when `value` is on the `comparison` side of it.
    public struct LoadFlag: Codable, Equatable, Sendable {
        public var code: FlagCode
        /// Nil: not computable yet (too little history or no load).
        public var value: Double?
        public var threshold: Double
        public var comparison: Comparison
        public var raised: Bool

        enum CodingKeys: String, CodingKey {
            case code = "code"
            case value = "value"
            case threshold = "threshold"
            case comparison = "comparison"
            case raised = "raised"
        }
    }

    public enum FlagCode: String, Codable, Sendable {
        case acwrRollingHigh = "acwr_rolling_high"
        case acwrEWMAHigh = "acwr_ewma_high"
        case monotonyHigh = "monotony_high"
        case formLow = "form_low"
        case rampRateHigh = "ramp_rate_high"
        case unknown = "unknown"

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = FlagCode(rawValue: raw) ?? .unknown
        }
    }

    public enum Comparison: String, Codable, Sendable {
        case above = "above"
        case below = "below"
        case unknown = "unknown"

        public init(from decoder: Decoder) throws {
            let raw = try decoder.singleValueContainer().decode(String.self)
            self = Comparison(rawValue: raw) ?? .unknown
        }
    }
}

/// How a workout's load was found, most trusted first.
public enum LoadMethod: String, Codable, Sendable {
    case heartRate = "heart_rate"
    case pace = "pace"
    case power = "power"
    case duration = "duration"
    case unknown = "unknown"

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = LoadMethod(rawValue: raw) ?? .unknown
    }
}

/// Where a physiology value came from. `unknown` is also the server's own "not known and not
/// guessed", so a source a newer server adds reads as not known.
public enum ValueSource: String, Codable, Sendable {
    case profile = "profile"
    case estimated = "estimated"
    case populationDefault = "default"
    case unknown = "unknown"

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = ValueSource(rawValue: raw) ?? .unknown
    }
}

public enum Sex: String, Codable, Sendable {
    case male = "male"
    case female = "female"
    case unknown = "unknown"

    public init(from decoder: Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        self = Sex(rawValue: raw) ?? .unknown
    }
}
