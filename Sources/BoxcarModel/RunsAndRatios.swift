/// The two codecs metric block version 3 adds to Gorilla's (Gorilla.swift), for the machine's
/// series, which are most of what an agent keeps:
///
/// - runs: a sampler's timestamps are on schedule (a delta of delta of 0) and most of its
///   series hold still (an XOR of 0) for most of a block. Gorilla spends a bit on each such
///   point, three a point in all; a run of them is one count here (600 points: 19 bits).
/// - ratios: most of what moves is a ratio of small integers. A CPU state's share is jiffies
///   over jiffies (91 / 101), memory and disk figures are integers, pressure's stall shares
///   microseconds over a million. Their doubles use every bit of the mantissa, so an XOR costs
///   5 to 7 bytes; the numerator and denominator, written as changes, cost one or two.

/// Elias' gamma code of n ≥ 1: as many zeros as n has bits after its first, then n.
enum EliasGamma {
    static func write(_ n: UInt64, into writer: inout BitWriter) {
        let width = 64 - n.leadingZeroBitCount
        writer.write(0, bits: width - 1)
        writer.write(n, bits: width)
    }

    static func read(from reader: inout BitReader) throws -> UInt64 {
        var zeros = 0
        while try !reader.bit() {
            zeros += 1
            guard zeros < 64 else { throw MetricBlock.CorruptBlock() }
        }
        return 1 << UInt64(zeros) | (try reader.read(bits: zeros))
    }
}

/// A column of symbols most of which are 0 ("no change"): each run of zeros is its length plus
/// one, gamma-coded, and each other symbol follows the run before it (of none or more).
enum ZeroRuns {
    static func encode(
        count: Int, isZero: (Int) -> Bool, into writer: inout BitWriter, other: (Int, inout BitWriter) -> Void
    ) {
        var run: UInt64 = 0
        for index in 0..<count {
            if isZero(index) {
                run += 1
            } else {
                EliasGamma.write(run + 1, into: &writer)
                other(index, &writer)
                run = 0
            }
        }
        if run > 0 { EliasGamma.write(run + 1, into: &writer) }
    }

    /// Calls `zeros` with each run's length and `other` for each symbol between them.
    static func decode(
        count: Int, from reader: inout BitReader, zeros: (Int) -> Void, other: (inout BitReader) throws -> Void
    ) throws {
        var done = 0
        while done < count {
            let run = try EliasGamma.read(from: &reader) - 1
            guard run <= UInt64(count - done) else { throw MetricBlock.CorruptBlock() }
            if run > 0 { zeros(Int(run)) }
            done += Int(run)
            if done < count {
                try other(&reader)
                done += 1
            }
        }
    }
}

/// Doubles that are exactly a ratio of integers p / q, q ≤ `maxDenominator`, |p| < 2^53.
enum Ratios {
    /// A million and a bit: pressure's microseconds over a second.
    static let maxDenominator: UInt64 = 1 << 20

    /// p and q with p / q == `value` bit for bit, preferring q = `near` (the denominator before:
    /// a CPU's jiffies in a tick hardly change), else a multiple of the smallest q near it; nil
    /// when there is none (NaN, infinities, -0, a double that is no such ratio).
    static func ratio(of value: Double, near: UInt64) -> (numerator: Int64, denominator: UInt64)? {
        guard value.isFinite, value.bitPattern != (-0.0).bitPattern else { return nil }
        if let p = numerator(of: value, over: near) { return (p, near) }
        // The convergents h/k of the continued fraction of |value| are its best approximations:
        // the first that is `value` exactly has the smallest denominator of all.
        var x = value.magnitude
        var (h, previousH): (Double, Double) = (1, 0)
        var (k, previousK): (Double, Double) = (0, 1)
        for _ in 0..<64 {
            let whole = x.rounded(.down)
            (h, previousH) = (whole * h + previousH, h)
            (k, previousK) = (whole * k + previousK, k)
            guard k <= Double(maxDenominator), h < 0x1p53 else { return nil }
            let q = UInt64(k)
            if numerator(of: value, over: q) != nil {
                let multiple = max(1, (near + q / 2) / q)
                let nearer = q * multiple
                if nearer <= maxDenominator, let p = numerator(of: value, over: nearer) { return (p, nearer) }
                return numerator(of: value, over: q).map { ($0, q) }
            }
            let rest = x - whole
            guard rest > 0 else { return nil }
            x = 1 / rest
        }
        return nil
    }

    /// p with p / q == `value` bit for bit, if there is one.
    static func numerator(of value: Double, over q: UInt64) -> Int64? {
        guard q >= 1, q <= maxDenominator else { return nil }
        let p = (value * Double(q)).rounded()
        guard p.magnitude < 0x1p53, (p / Double(q)).bitPattern == value.bitPattern else { return nil }
        return Int64(p)
    }
}
