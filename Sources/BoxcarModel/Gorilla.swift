/// The bit-level codecs of a compressed metric block (MetricBlock versions 2 and 3), after Facebook's
/// Gorilla paper ("Gorilla: A Fast, Scalable, In-Memory Time Series Database", 2015), as
/// Prometheus' TSDB uses them:
///
/// - integers (steps, wallclocks) as the change of their change ("delta of delta"): a series
///   sampled at a steady rate, or logged every step, costs one bit a point;
/// - floats as the XOR with the value before: a constant series costs one bit a point, a slowly
///   moving one the few bits that changed.
///
/// Everything wraps: any UInt64 step and any Int64 wallclock round-trips, in any order, and
/// every double (NaN payloads, -0, subnormals) comes back bit for bit.

/// Writes bits most significant first.
public struct BitWriter {
    public private(set) var bytes: [UInt8] = []
    /// Bits not yet in `bytes`: the low `filled` bits of `pending` (fewer than 8 between writes).
    private var pending: UInt64 = 0
    private var filled = 0

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    /// Writes the low `width` bits of `value` (0...64).
    public mutating func write(_ value: UInt64, bits width: Int) {
        if width > 56 {
            // `pending` holds at most 7 bits: more than 56 at once would not fit beside them.
            write(value >> 32, bits: width - 32)
            write(value & 0xffff_ffff, bits: 32)
            return
        }
        guard width > 0 else { return }
        pending = pending << UInt64(width) | (value & (UInt64.max >> UInt64(64 - width)))
        filled += width
        while filled >= 8 {
            filled -= 8
            bytes.append(UInt8(truncatingIfNeeded: pending >> UInt64(filled)))
        }
    }

    public mutating func write(_ bit: Bool) { write(bit ? 1 : 0, bits: 1) }

    /// The bytes written, the last padded with zero bits.
    public mutating func finish() -> [UInt8] {
        if filled > 0 {
            bytes.append(UInt8(truncatingIfNeeded: pending << UInt64(8 - filled)))
            filled = 0
        }
        return bytes
    }
}

/// Reads what a BitWriter wrote.
public struct BitReader {
    private let data: UnsafeRawBufferPointer
    private var position: Int
    private let end: Int

    /// Reads from byte `offset` of `data` to its end.
    public init(_ data: UnsafeRawBufferPointer, offset: Int = 0) {
        self.data = data
        self.position = offset * 8
        self.end = data.count * 8
    }

    public mutating func read(bits width: Int) throws -> UInt64 {
        if width > 56 {
            let high = try read(bits: width - 32)
            return high << 32 | (try read(bits: 32))
        }
        guard position + width <= end else { throw MetricBlock.CorruptBlock() }
        let value = peek(bits: width)
        position += width
        return value
    }

    /// The next `width` bits (0...56) without moving past them, zeros past the end.
    public func peek(bits width: Int) -> UInt64 {
        guard width > 0 else { return 0 }
        // The 8 bytes from the one the next bit is in, read at once: a bit at a time made a
        // 1 M point read 2 to 3 times slower than version 1's (perf: BitReader.read on top).
        let first = position >> 3
        var word: UInt64 = 0
        if first + 8 <= data.count {
            word = UInt64(bigEndian: data.loadUnaligned(fromByteOffset: first, as: UInt64.self))
        } else {
            for index in first..<(first + 8) { word = word << 8 | (index < data.count ? UInt64(data[index]) : 0) }
        }
        // At most 7 bits before the wanted ones and 56 of them: they lie within the word.
        return (word << UInt64(position & 7)) >> UInt64(64 - width)
    }

    public mutating func skip(bits width: Int) throws {
        guard position + width <= end else { throw MetricBlock.CorruptBlock() }
        position += width
    }

    public mutating func bit() throws -> Bool { try read(bits: 1) == 1 }
}

/// Integers as the change of their change, in a prefix code of widths: a zero change of change is
/// one bit; others take the smallest width that holds them as a signed number.
public struct DeltaOfDelta {
    /// The widths of the code's buckets: bucket i is i one-bits then a zero (the last has no zero),
    /// then the value in that many bits, two's complement.
    static let widths = [0, 7, 14, 21, 28, 40, 64]

    private var previous: UInt64 = 0
    private var delta: UInt64 = 0
    private var started = false

    public init() {}

    public mutating func encode(_ value: UInt64, into writer: inout BitWriter) {
        Self.writeSigned(changeOfChange(to: value), into: &writer)
    }

    public mutating func decode(from reader: inout BitReader) throws -> UInt64 {
        value(after: try Self.readSigned(from: &reader))
    }

    /// The change of change from the values before to `value`, which becomes the one before.
    /// The first value is its own change of change, the second its difference from the first.
    mutating func changeOfChange(to value: UInt64) -> Int64 {
        let change = value &- previous
        let changeOfChange = Int64(bitPattern: change &- delta)
        previous = value
        delta = started ? change : 0
        started = true
        return changeOfChange
    }

    /// The value `changeOfChange` makes after the values before, which becomes the one before.
    mutating func value(after changeOfChange: Int64) -> UInt64 {
        let change = UInt64(bitPattern: changeOfChange) &+ delta
        let value = previous &+ change
        previous = value
        delta = started ? change : 0
        started = true
        return value
    }

    /// `value` in the first bucket of `widths` that holds it (a width of 0 holds only 0).
    static func writeSigned(_ value: Int64, widths: [Int] = widths, into writer: inout BitWriter) {
        let last = widths.count - 1
        for (bucket, width) in widths.enumerated() {
            let fits = switch width {
            case 0: value == 0
            case 64: true
            default: value >= -(1 << Int64(width - 1)) && value < 1 << Int64(width - 1)
            }
            guard fits else { continue }
            // `bucket` ones, then a zero unless it is the last bucket.
            writer.write(UInt64.max, bits: bucket)
            if bucket < last { writer.write(false) }
            writer.write(UInt64(bitPattern: value), bits: width)
            return
        }
    }

    static func readSigned(widths: [Int] = widths, from reader: inout BitReader) throws -> Int64 {
        // The prefix's ones, counted in one look at the next bits.
        let last = widths.count - 1
        let prefix = reader.peek(bits: last)
        let bucket = min((~(prefix << UInt64(64 - last))).leadingZeroBitCount, last)
        try reader.skip(bits: bucket == last ? last : bucket + 1)
        let width = widths[bucket]
        guard width > 0 else { return 0 }
        let raw = try reader.read(bits: width)
        // Sign-extend from `width` bits.
        let shift = UInt64(64 - width)
        return Int64(bitPattern: raw << shift) >> Int64(shift)
    }
}

/// Doubles as the XOR with the one before: 0 when equal; else 1, then either 0 and the changed
/// bits within the window of the last XOR that wrote one, or 1, a new window (6 bits of leading
/// zeros, 6 bits of length - 1) and the changed bits.
public struct XORFloats {
    private var previous: UInt64 = 0
    private var leading = 0
    private var trailing = 0
    private var started = false
    private var hasWindow = false

    public init() {}

    public mutating func encode(_ value: Double, into writer: inout BitWriter) {
        let bits = value.bitPattern
        defer { previous = bits }
        guard started else {
            started = true
            writer.write(bits, bits: 64)
            return
        }
        let xor = bits ^ previous
        guard xor != 0 else {
            writer.write(false)
            return
        }
        writer.write(true)
        writeChange(xor, into: &writer)
    }

    /// The changed bits of an XOR that is not 0: 0 and the bits within the last window, or 1, a
    /// new window and the bits.
    mutating func writeChange(_ xor: UInt64, into writer: inout BitWriter) {
        let zerosBefore = xor.leadingZeroBitCount
        let zerosAfter = xor.trailingZeroBitCount
        if hasWindow && zerosBefore >= leading && zerosAfter >= trailing {
            writer.write(false)
            writer.write(xor >> UInt64(trailing), bits: 64 - leading - trailing)
            return
        }
        writer.write(true)
        leading = zerosBefore
        trailing = zerosAfter
        hasWindow = true
        let length = 64 - leading - trailing
        writer.write(UInt64(leading), bits: 6)
        writer.write(UInt64(length - 1), bits: 6)
        writer.write(xor >> UInt64(trailing), bits: length)
    }

    public mutating func decode(from reader: inout BitReader) throws -> Double {
        guard started else {
            started = true
            previous = try reader.read(bits: 64)
            return Double(bitPattern: previous)
        }
        guard try reader.bit() else { return Double(bitPattern: previous) }
        previous ^= try readChange(from: &reader)
        return Double(bitPattern: previous)
    }

    /// What `writeChange` wrote: an XOR that is not 0.
    mutating func readChange(from reader: inout BitReader) throws -> UInt64 {
        if try reader.bit() {
            leading = Int(try reader.read(bits: 6))
            let length = Int(try reader.read(bits: 6)) + 1
            guard leading + length <= 64 else { throw MetricBlock.CorruptBlock() }
            trailing = 64 - leading - length
            hasWindow = true
        } else if !hasWindow {
            throw MetricBlock.CorruptBlock()
        }
        let xor = try reader.read(bits: 64 - leading - trailing) << UInt64(trailing)
        guard xor != 0 else { throw MetricBlock.CorruptBlock() }
        return xor
    }
}
