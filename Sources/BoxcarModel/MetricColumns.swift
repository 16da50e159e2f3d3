/// Points of one series as parallel columns: how Boxcar's API carries them, how the store packs
/// them, and how queries return them. Point `i` is (`steps[i]`, `wallclocks[i]`, value), where the
/// value is `values[i]` unless `nonFloat[i]` holds a string or bytes value (then `values[i]` is NaN).
public struct MetricColumns: Sendable, Hashable {
    public var steps: [UInt64] = []
    public var wallclocks: [Int64] = []
    public var values: [Double] = []
    public var nonFloat: [Int: MetricValue] = [:]

    public init() {}

    public init(_ points: [MetricPoint]) {
        reserveCapacity(points.count)
        for point in points { append(point) }
    }

    public var count: Int { steps.count }
    public var isEmpty: Bool { steps.isEmpty }

    public mutating func reserveCapacity(_ capacity: Int) {
        steps.reserveCapacity(capacity)
        wallclocks.reserveCapacity(capacity)
        values.reserveCapacity(capacity)
    }

    /// Room for `more` points after those held, grown as appending one at a time grows it (at
    /// least doubled): reserving the exact sum block after block reallocated and copied the whole
    /// columns at each block, most of a 24-hour read of 144 blocks a series in perf.
    public mutating func reserveCapacity(forAppending more: Int) {
        let needed = count + more
        guard needed > steps.capacity || needed > wallclocks.capacity || needed > values.capacity else { return }
        reserveCapacity(Swift.max(needed, 2 * steps.capacity))
    }

    /// Drops the points from `index` on (and any column left longer than the others there).
    public mutating func removePoints(from index: Int) {
        if steps.count > index { steps.removeSubrange(index...) }
        if wallclocks.count > index { wallclocks.removeSubrange(index...) }
        if values.count > index { values.removeSubrange(index...) }
        if nonFloat.keys.contains(where: { $0 >= index }) { nonFloat = nonFloat.filter { $0.key < index } }
    }

    public mutating func append(step: UInt64, wallclock: Int64, value: Double) {
        steps.append(step)
        wallclocks.append(wallclock)
        values.append(value)
    }

    /// Appends every point of `other`, after these.
    public mutating func append(contentsOf other: MetricColumns) {
        for (index, value) in other.nonFloat { nonFloat[count + index] = value }
        steps.append(contentsOf: other.steps)
        wallclocks.append(contentsOf: other.wallclocks)
        values.append(contentsOf: other.values)
    }

    public mutating func append(_ point: MetricPoint) {
        steps.append(point.step)
        wallclocks.append(point.wallclock)
        if case .float(let value) = point.value {
            values.append(value)
        } else {
            nonFloat[values.count] = point.value
            values.append(.nan)
        }
    }

    public func value(at index: Int) -> MetricValue {
        nonFloat[index] ?? .float(values[index])
    }

    public func point(at index: Int) -> MetricPoint {
        MetricPoint(step: steps[index], wallclock: wallclocks[index], value: value(at: index))
    }

    public var points: [MetricPoint] { (0..<count).map(point(at:)) }

    /// The points at `range`, a run of them: each column copied whole.
    public func slice(_ range: ClosedRange<Int>) -> MetricColumns {
        guard !nonFloat.isEmpty else {
            var out = MetricColumns()
            out.steps = Array(steps[range])
            out.wallclocks = Array(wallclocks[range])
            out.values = Array(values[range])
            return out
        }
        return selecting(range)
    }

    /// The points at `indices`, in that order.
    public func selecting(_ indices: some Collection<Int>) -> MetricColumns {
        var out = MetricColumns()
        out.reserveCapacity(indices.count)
        for index in indices {
            if let other = nonFloat[index] { out.nonFloat[out.count] = other }
            out.steps.append(steps[index])
            out.wallclocks.append(wallclocks[index])
            out.values.append(values[index])
        }
        return out
    }

    /// Reorders the points by step, then wallclock, then arrival (their present order).
    public mutating func sortByStep() {
        var sorted = true
        for index in steps.indices.dropFirst()
        where (steps[index - 1], wallclocks[index - 1]) > (steps[index], wallclocks[index]) {
            sorted = false
            break
        }
        if sorted { return }
        let order = steps.indices.sorted { a, b in
            (steps[a], wallclocks[a], a) < (steps[b], wallclocks[b], b)
        }
        self = selecting(order)
    }
}
