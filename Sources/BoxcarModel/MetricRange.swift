/// An inclusive range of steps or wallclock values, as QueryMetrics and exporters ask for.
public struct MetricRange: Sendable, Hashable {
    public enum Axis: Sendable, Hashable { case step, wallclock }

    public var from: Int64
    public var to: Int64
    public var axis: Axis

    public init(from: Int64, to: Int64, axis: Axis) {
        self.from = from
        self.to = to
        self.axis = axis
    }

    public func filter(_ columns: MetricColumns) -> MetricColumns {
        if from == .min && to == .max { return columns }
        let indices = (0..<columns.count).filter { index in
            switch axis {
            case .step:
                // Steps are unsigned; a negative bound is below every step, and `to == .max`
                // (no bound) is above every one, those past Int64.max included.
                let step = columns.steps[index]
                return (from <= 0 || step >= UInt64(from)) && (to == .max || (to >= 0 && step <= UInt64(to)))
            case .wallclock:
                let wallclock = columns.wallclocks[index]
                return wallclock >= from && wallclock <= to
            }
        }
        if indices.count == columns.count { return columns }
        // Points in order keep one run (a window cuts the first and last blocks): copied whole.
        if let first = indices.first, let last = indices.last, last - first + 1 == indices.count {
            return columns.slice(first...last)
        }
        return columns.selecting(indices)
    }
}

extension MetricColumns {
    /// At most `maxPoints` points, evenly spaced over the series, the first and last kept.
    public func thinned(to maxPoints: Int) -> MetricColumns {
        guard maxPoints > 0, count > maxPoints else { return self }
        if maxPoints == 1 { return selecting([count - 1]) }
        let last = count - 1
        let indices = (0..<maxPoints).map { slot in (slot * last) / (maxPoints - 1) }
        return selecting(indices)
    }
}
