import BoxcarModel

/// The bytes of a `modelbox.GetMetricsResponse`, written straight from columns.
///
/// A GetMetrics answer for a long run holds millions of points. Building a `MetricsValue` message
/// per point and letting swift-protobuf walk them took most of the call's time (1,000,000 points:
/// ~0.5 s of 0.56 s); writing the wire format directly from the columns skips both. The output is
/// what swift-protobuf writes for the same message (tests compare them).
public enum GetMetricsEncoding {
    public static func encode(_ series: [(key: String, columns: MetricColumns)]) -> [UInt8] {
        var sizes: [Int] = []
        var total = 0
        for entry in series {
            let size = metricsSize(key: entry.key, columns: entry.columns)
            sizes.append(size)
            total += 1 + varintSize(UInt64(size)) + size
        }
        var out: [UInt8] = []
        out.reserveCapacity(total)
        for (entry, size) in zip(series, sizes) {
            out.append(0x0A)  // GetMetricsResponse.metrics = 1, length-delimited
            putVarint(&out, UInt64(size))
            if !entry.key.isEmpty {
                out.append(0x0A)  // Metrics.key = 1, omitted when empty as proto3 does
                putVarint(&out, UInt64(entry.key.utf8.count))
                out.append(contentsOf: entry.key.utf8)
            }
            let columns = entry.columns
            for index in 0..<columns.count {
                out.append(0x12)  // Metrics.values = 2
                putVarint(&out, UInt64(valueSize(columns, index)))
                writeValue(&out, columns, index)
            }
        }
        return out
    }

    private static func metricsSize(key: String, columns: MetricColumns) -> Int {
        let keyBytes = key.utf8.count
        var size = keyBytes == 0 ? 0 : 1 + varintSize(UInt64(keyBytes)) + keyBytes
        for index in 0..<columns.count {
            let value = valueSize(columns, index)
            size += 1 + varintSize(UInt64(value)) + value
        }
        return size
    }

    /// MetricsValue: step = 1 and wallclock_time = 2 (varints, omitted when zero as proto3 does),
    /// then the oneof: f_val = 5 (fixed32), s_tensor = 6, b_tensor = 7 (length-delimited).
    @inline(__always)
    private static func valueSize(_ columns: MetricColumns, _ index: Int) -> Int {
        let step = columns.steps[index]
        let wallclock = UInt64(bitPattern: columns.wallclocks[index])
        var size = (step == 0 ? 0 : 1 + varintSize(step)) + (wallclock == 0 ? 0 : 1 + varintSize(wallclock))
        switch columns.nonFloat.isEmpty ? nil : columns.nonFloat[index] {
        case .string(let text): size += 1 + varintSize(UInt64(text.utf8.count)) + text.utf8.count
        case .bytes(let bytes): size += 1 + varintSize(UInt64(bytes.count)) + bytes.count
        case .float, nil: size += 5
        }
        return size
    }

    @inline(__always)
    private static func writeValue(_ out: inout [UInt8], _ columns: MetricColumns, _ index: Int) {
        let step = columns.steps[index]
        let wallclock = UInt64(bitPattern: columns.wallclocks[index])
        if step != 0 {
            out.append(0x08)
            putVarint(&out, step)
        }
        if wallclock != 0 {
            out.append(0x10)
            putVarint(&out, wallclock)
        }
        switch columns.nonFloat.isEmpty ? nil : columns.nonFloat[index] {
        case .string(let text):
            out.append(0x32)
            putVarint(&out, UInt64(text.utf8.count))
            out.append(contentsOf: text.utf8)
        case .bytes(let bytes):
            out.append(0x3A)
            putVarint(&out, UInt64(bytes.count))
            out.append(contentsOf: bytes)
        case .float, nil:
            out.append(0x2D)
            let bits = Float(columns.values[index]).bitPattern
            withUnsafeBytes(of: bits.littleEndian) { out.append(contentsOf: $0) }
        }
    }

    @inline(__always)
    private static func varintSize(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    @inline(__always)
    private static func putVarint(_ out: inout [UInt8], _ value: UInt64) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }
}
