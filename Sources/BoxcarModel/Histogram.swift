/// Counts of durations in fixed buckets (upper bounds in seconds, as Prometheus' `le`), their
/// sum and count: a Prometheus histogram's numbers, kept by whoever times something.
public struct Histogram: Sendable, Equatable {
    /// Upper bounds, rising; the last bucket (+Inf) is implied.
    public let bounds: [Double]
    /// Observations at most each bound (not cumulative), then above the last.
    public private(set) var counts: [Int]
    public private(set) var sum: Double = 0
    public private(set) var count: Int = 0

    /// For commits and calls: 100 µs to 10 s.
    public static let latencyBounds: [Double] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

    public init(bounds: [Double] = Histogram.latencyBounds) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count + 1)
    }

    public mutating func observe(_ value: Double) {
        var index = 0
        while index < bounds.count && value > bounds[index] { index += 1 }
        counts[index] += 1
        sum += value
        count += 1
    }

    /// (bound, observations at most it) for each bound, then (+Inf, count): Prometheus' buckets.
    public var cumulative: [(bound: Double, count: Int)] {
        var running = 0
        var out: [(bound: Double, count: Int)] = []
        for (bound, count) in zip(bounds + [.infinity], counts) {
            running += count
            out.append((bound, running))
        }
        return out
    }
}
