#if canImport(Glibc)
import Glibc
#endif

/// Where an axis gets its ticks and how they read: round numbers (1, 2 or 5 times a power of ten)
/// and round times (a second to a week), labelled short.
public enum Ticks {
    /// About `count` round values from `lower` to `upper` (both inside the answer's span).
    static func numbers(_ lower: Double, _ upper: Double, count: Int) -> [Double] {
        guard upper > lower, count > 0 else { return [lower] }
        // Each bound divided first: the span of ±1e308 is past what a double holds.
        let rough = upper / Double(count) - lower / Double(count)
        let power = pow10(floor(log10(rough)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= rough } ?? 10 * power
        // Whole multiples of the step, each made from its index (a sum of steps drifts).
        let first = (lower / step - 1e-9).rounded(.up)
        let last = (upper / step + 1e-9).rounded(.down)
        guard first <= last else { return [lower] }
        return stride(from: first, through: last, by: 1).map { $0 == 0 ? 0 : $0 * step }
    }

    /// Round steps of time, in seconds.
    static let timeSteps: [Double] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172_800, 604_800,
    ]

    /// About `count` round times (seconds since the epoch, on whole steps of UTC) within the span.
    static func times(_ lower: Double, _ upper: Double, count: Int) -> [Double] {
        guard upper > lower, count > 0 else { return [lower] }
        let rough = (upper - lower) / Double(count)
        guard let step = timeSteps.first(where: { $0 >= rough }) else {
            return numbers(lower / 86400, upper / 86400, count: count).map { $0 * 86400 }
        }
        var out: [Double] = []
        var value = (lower / step).rounded(.up) * step
        while value <= upper {
            out.append(value)
            value += step
        }
        return out
    }

    /// An axis' ticks as labels told apart: each with as many decimals as the ticks' spacing
    /// needs (0.001, 0.0015, 0.002), in the unit of the largest (1.05M, 1.1M), a share (`unit` 1)
    /// as a percentage.
    static func labels(_ ticks: [Double], unit: String) -> [String] {
        // A "share" past what a double holds as a percentage is no share: its plain number.
        if unit == "1" && ticks.contains(where: { !($0 * 100).isFinite }) { return labels(ticks, unit: "") }
        let values = unit == "1" ? ticks.map { $0 * 100 } : ticks
        guard values.count > 1, let largest = values.map(abs).max(), largest > 0 else {
            return ticks.map { label($0, unit: unit) }
        }
        let spacing = abs(values[1] - values[0])
        let suffix = unit == "1" ? "%" : ""
        let scales: [(Double, String)] = unit == "1" ? [] : [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        let (scale, letter) = scales.first { largest >= $0.0 } ?? (1, "")
        if scale == 1 && largest < 1e-3 && unit != "1" {
            // Tiny values: an exponent, with the digits the spacing needs.
            let power = floor(log10(largest))
            let digits = wholeDigits(power - floor(log10(spacing)))
            return values.map { fixed($0 / pow10(power), decimals: digits) + "e" + String(Int(power)) }
        }
        let decimals = wholeDigits(ceil(-log10(spacing / scale) - 1e-9))
        return values.map { fixed($0 / scale, decimals: decimals) + letter + suffix }
    }

    /// Decimals from a difference of logarithms: 0 to 9, and 0 where the ticks' spacing is not
    /// a number a logarithm gives one for (no spacing; one past what a double holds).
    private static func wholeDigits(_ count: Double) -> Int {
        count.isFinite ? max(0, min(9, Int(count.rounded()))) : 0
    }

    /// `value` with exactly `decimals` decimals (rounded half away from zero).
    public static func fixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : value < 0 ? "-inf" : "inf" }
        let factor = pow10(Double(decimals))
        // Past what the integer digits below hold (a float32's largest is 3.4e38): an exponent.
        guard abs(value) * factor < 9e18 else { return exponent(value) }
        let scaled = (abs(value) * factor).rounded()
        let whole = Int64(scaled / factor)
        var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
        if decimals > 0 {
            let fraction = String(Int64(scaled - Double(whole) * factor))
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return text
    }

    /// A number short: 12, 1.5k, 2.5M, 0.25, 1e-06; a share (`unit` 1) as a percentage.
    static func label(_ value: Double, unit: String) -> String {
        if unit == "1" && (value * 100).isFinite { return short(value * 100) + "%" }
        let magnitude = abs(value)
        for (scale, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] where magnitude >= scale {
            return short(value / scale) + suffix
        }
        return magnitude != 0 && magnitude < 1e-3 ? exponent(value) : short(value)
    }

    /// Up to three significant digits, no trailing zeros.
    static func short(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int64(rounded)) }
        var text = String(rounded)
        if text.contains("e") { return exponent(value) }
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    private static func exponent(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return value.isNaN ? "nan" : value == 0 ? "0" : value < 0 ? "-inf" : "inf" }
        let power = Int(floor(log10(abs(value))))
        return short(value / pow10(Double(power))) + "e" + String(power)
    }

    /// A time of day in UTC (HH:MM, or HH:MM:SS when the ticks are under a minute apart), with the
    /// date (YYYY-MM-DD) where the ticks are a day or more apart.
    static func label(time seconds: Double, step: Double) -> String {
        let whole = Int64(seconds.rounded(.down))
        let days = whole >= 0 ? whole / 86400 : (whole - 86399) / 86400
        let ofDay = whole - days * 86400
        let (year, month, day) = civil(days: days)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        if step >= 86400 { return "\(year)-\(two(month))-\(two(day))" }
        let clock = two(ofDay / 3600) + ":" + two(ofDay % 3600 / 60)
        return step < 60 ? clock + ":" + two(ofDay % 60) : clock
    }

    /// The proleptic Gregorian date of a day counted from 1970-01-01 (Howard Hinnant's
    /// days_from_civil, inverted).
    static func civil(days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    private static func pow10(_ exponent: Double) -> Double {
        pow(10, exponent)
    }
}
