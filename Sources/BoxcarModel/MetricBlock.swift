/// The packed form of a run of points of one series: one BLOB per series per write in the agent's
/// SQLite file, one `bytea` per series per batch in the collector's PostgreSQL, the same bytes on
/// the wire between them.
///
/// A row per point costs ~30 bytes in SQLite and caps inserts near 300,000 rows/s here; packing a
/// batch's points of one series into one row costs ~1 byte per step, 1-5 per wallclock and 8 per
/// float, and turns a million points into a few thousand rows.
///
/// Layout (version 1):
///   u8 version, u8 kinds (0: every value is a float, 1: a kind byte per point follows), varint count
///   [count × u8 kind: 0 float, 1 string, 2 bytes]            only when kinds == 1
///   steps:      varint first, then zigzag varint deltas
///   wallclocks: zigzag varint first, then zigzag varint deltas
///   values:     float: 8 bytes little-endian IEEE 754; string or bytes: varint length, bytes
///
/// Layout (version 2, float points only, compressed: Gorilla.swift):
///   u8 version, varint count, then bits, most significant first, the last byte padded with zeros:
///   steps:      count × delta of delta (the first as itself, the second as its delta)
///   wallclocks: the same, of the wallclocks' bit patterns
///   values:     count × XOR with the value before (the first as its 64 bits)
/// A steady series costs about 2 bits a point for its step and wallclock, and a constant value 1.
/// Written before version 3, and read still.
///
/// Layout (version 3, float points only, compressed: Gorilla.swift, RunsAndRatios.swift):
///   u8 version, varint count, u8 value coding (0: XOR, 1: ratios, 2: plain ratios),
///   [ratios: varint factor], [plain ratios: varint factor, u8 width],
///   then bits as in version 2:
///   steps:      count × delta of delta, each run of zeros one gamma-coded length, the others
///               in Gorilla's buckets less the one for 0
///   wallclocks: the same
///   values:     XOR: the first as its 64 bits, then count - 1 × XOR with the value before,
///                    runs of zeros as above, the others as in version 2 less its first bit;
///               ratios: count × (p, q) with value == p × factor / q exactly, runs of points
///                    whose p and q are those before (0 and 1 before the first) as above, the
///                    others as the change of p and the change of q, each in buckets of widths;
///               plain ratios: the same, with p as itself, zigzagged, in `width` bits (a share that
///                    jumps about within its range costs less so than as changes).
/// A sampler's steady timestamps cost a few bits a block instead of two a point, a constant value
/// as little, and a CPU state's share (jiffies over jiffies) a byte or so instead of six.
public enum MetricBlock {
    public static let version: UInt8 = 1
    /// Gorilla's codecs alone, without runs and ratios.
    public static let gorillaVersion: UInt8 = 2
    public static let compressedVersion: UInt8 = 3
    /// The most points of a version 3 block: a run of points costs a few bits, so a forged count
    /// is bounded apart. An agent's blocks hold at most a batch's points (200,000) or a
    /// stretch's (`--head-ticks`, 100,000); a longer series is packed (version 1).
    public static let maxCompressedCount = 1 << 18

    enum ValueCoding: UInt8 {
        case xor = 0
        case ratios = 1
        case plainRatios = 2
    }

    /// Buckets of the changes of change that are not 0 (version 3 writes runs of those apart).
    static let changeWidths = [7, 14, 21, 28, 40, 64]
    /// Buckets of the changes of a ratio's numerator and denominator.
    static let numeratorWidths = [0, 4, 8, 12, 16, 24, 32, 64]
    static let denominatorWidths = [0, 3, 8, 22]

    /// The smaller of the two versions: a steady or slowly moving float series compresses (a bit
    /// or a few a point), a noisy one (a training loss) may not, and strings and bytes are only
    /// in version 1.
    public static func encode(_ columns: MetricColumns) -> [UInt8] {
        let compressed = encodeCompressed(columns)
        // Version 1 holds floats alone in at least 3 + 10 bytes a point (each value's 8 bytes, a
        // step's and a wallclock's change a byte or more): a compressed block under that is the
        // smaller without writing the other, a tenth of compaction's CPU in perf.
        if let compressed, compressed.count < 3 + 10 * columns.count { return compressed }
        let packed = encodePacked(columns)
        guard let compressed, compressed.count < packed.count else { return packed }
        return compressed
    }

    /// Version 1, which the collector's SQL reads (`boxcar.decode_block`).
    public static func encodePacked(_ columns: MetricColumns) -> [UInt8] {
        let count = columns.count
        var out: [UInt8] = []
        out.reserveCapacity(16 + count * 14)
        out.append(version)
        let mixed = !columns.nonFloat.isEmpty
        out.append(mixed ? 1 : 0)
        Varint.append(UInt64(count), to: &out)
        if mixed {
            for index in 0..<count {
                switch columns.nonFloat[index] {
                case .string: out.append(1)
                case .bytes: out.append(2)
                case .float, nil: out.append(0)
                }
            }
        }
        var previousStep: UInt64 = 0
        for step in columns.steps {
            Varint.append(Varint.zigzag(Int64(bitPattern: step &- previousStep)), to: &out)
            previousStep = step
        }
        var previousWallclock: Int64 = 0
        for wallclock in columns.wallclocks {
            Varint.append(Varint.zigzag(wallclock &- previousWallclock), to: &out)
            previousWallclock = wallclock
        }
        for index in 0..<count {
            switch mixed ? columns.nonFloat[index] : nil {
            case .string(let text):
                Varint.append(UInt64(text.utf8.count), to: &out)
                out.append(contentsOf: text.utf8)
            case .bytes(let bytes):
                Varint.append(UInt64(bytes.count), to: &out)
                out.append(contentsOf: bytes)
            case .float, nil:
                let bits = columns.values[index].bitPattern
                withUnsafeBytes(of: bits.littleEndian) { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    public struct CorruptBlock: Error, CustomStringConvertible {
        public var description: String { "a metric block is corrupt" }
    }

    /// The version 3 block of `columns`, its values as ratios when that is smaller; nil when a
    /// point is not a float (version 1 holds those) or there are too many.
    public static func encodeCompressed(_ columns: MetricColumns) -> [UInt8]? {
        guard columns.nonFloat.isEmpty, columns.count <= maxCompressedCount else { return nil }
        var header: [UInt8] = [compressedVersion]
        Varint.append(UInt64(columns.count), to: &header)
        var times = BitWriter(capacity: 64 + columns.count / 4)
        writeRuns(of: columns.steps, into: &times)
        writeRuns(of: columns.wallclocks.lazy.map { UInt64(bitPattern: $0) }, into: &times)
        var xor = times
        writeXOR(columns.values, into: &xor)
        var best = header + [ValueCoding.xor.rawValue] + xor.finish()
        if let ratios = Self.ratios(of: columns.values) {
            let width = ratios.numerators.map { 64 - Varint.zigzag($0).leadingZeroBitCount }.max() ?? 0
            for plain in [false, true] {
                var writer = times
                writeRatios(ratios, plainWidth: plain ? width : nil, into: &writer)
                var candidate = header + [(plain ? ValueCoding.plainRatios : .ratios).rawValue]
                Varint.append(ratios.factor, to: &candidate)
                if plain { candidate.append(UInt8(width)) }
                candidate += writer.finish()
                if candidate.count < best.count { best = candidate }
            }
        }
        return best
    }

    /// Steps or wallclocks as changes of change, runs of zeros apart.
    private static func writeRuns(of column: some Collection<UInt64>, into writer: inout BitWriter) {
        var coder = DeltaOfDelta()
        let changes = column.map { coder.changeOfChange(to: $0) }
        ZeroRuns.encode(count: changes.count, isZero: { changes[$0] == 0 }, into: &writer) { index, writer in
            DeltaOfDelta.writeSigned(changes[index], widths: changeWidths, into: &writer)
        }
    }

    private static func readRuns(count: Int, from reader: inout BitReader, _ append: (UInt64) -> Void) throws {
        var coder = DeltaOfDelta()
        try ZeroRuns.decode(
            count: count, from: &reader,
            zeros: { run in for _ in 0..<run { append(coder.value(after: 0)) } },
            other: { reader in append(coder.value(after: try DeltaOfDelta.readSigned(widths: changeWidths, from: &reader))) })
    }

    private static func writeXOR(_ values: [Double], into writer: inout BitWriter) {
        guard let first = values.first else { return }
        writer.write(first.bitPattern, bits: 64)
        var floats = XORFloats()
        let changes = zip(values, values.dropFirst()).map { $0.bitPattern ^ $1.bitPattern }
        ZeroRuns.encode(count: changes.count, isZero: { changes[$0] == 0 }, into: &writer) { index, writer in
            floats.writeChange(changes[index], into: &writer)
        }
    }

    struct RatioColumns {
        var numerators: [Int64] = []
        var denominators: [UInt64] = []
        /// What every numerator is a multiple of (1024 for memory's bytes, counted in kB).
        var factor: UInt64 = 1
    }

    /// Each value as p × factor / q exactly; nil when one is no such ratio.
    static func ratios(of values: [Double]) -> RatioColumns? {
        var out = RatioColumns()
        out.numerators.reserveCapacity(values.count)
        out.denominators.reserveCapacity(values.count)
        var near: UInt64 = 1
        var factor: UInt64 = 0
        for value in values {
            guard let ratio = Ratios.ratio(of: value, near: near) else { return nil }
            out.numerators.append(ratio.numerator)
            out.denominators.append(ratio.denominator)
            near = ratio.denominator
            factor = greatestCommonDivisor(factor, ratio.numerator.magnitude)
        }
        out.factor = max(factor, 1)
        if out.factor > 1 {
            for index in out.numerators.indices { out.numerators[index] /= Int64(out.factor) }
        }
        return out
    }

    private static func greatestCommonDivisor(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// `plainWidth`: numerators as themselves in that many bits, else as changes.
    private static func writeRatios(_ ratios: RatioColumns, plainWidth: Int?, into writer: inout BitWriter) {
        let p = ratios.numerators
        let q = ratios.denominators
        ZeroRuns.encode(
            count: p.count,
            isZero: { $0 == 0 ? p[0] == 0 && q[0] == 1 : p[$0] == p[$0 - 1] && q[$0] == q[$0 - 1] },
            into: &writer
        ) { index, writer in
            let (p0, q0) = index == 0 ? (0, 1) : (p[index - 1], q[index - 1])
            if let plainWidth {
                writer.write(Varint.zigzag(p[index]), bits: plainWidth)
            } else {
                DeltaOfDelta.writeSigned(p[index] - p0, widths: numeratorWidths, into: &writer)
            }
            DeltaOfDelta.writeSigned(Int64(q[index]) - Int64(q0), widths: denominatorWidths, into: &writer)
        }
    }

    /// Version 2 (Gorilla's codecs alone). Agents wrote it before version 3; tests write it to
    /// check that what databases and collectors hold is still read.
    static func encodeVersion2(_ columns: MetricColumns) -> [UInt8]? {
        guard columns.nonFloat.isEmpty else { return nil }
        var out: [UInt8] = [gorillaVersion]
        Varint.append(UInt64(columns.count), to: &out)
        var writer = BitWriter(capacity: columns.count * 2)
        var steps = DeltaOfDelta()
        for step in columns.steps { steps.encode(step, into: &writer) }
        var wallclocks = DeltaOfDelta()
        for wallclock in columns.wallclocks { wallclocks.encode(UInt64(bitPattern: wallclock), into: &writer) }
        var values = XORFloats()
        for value in columns.values { values.encode(value, into: &writer) }
        return out + writer.finish()
    }

    /// Appends the block's points (of either version) to `columns`; a corrupt block appends none.
    public static func decode(_ data: UnsafeRawBufferPointer, into columns: inout MetricColumns) throws {
        let before = columns.count
        do {
            switch data.first {
            case version: try decodePacked(data, into: &columns)
            case gorillaVersion: try decodeVersion2(data, into: &columns)
            case compressedVersion: try decodeCompressed(data, into: &columns)
            default: throw CorruptBlock()
            }
        } catch {
            columns.removePoints(from: before)
            throw error
        }
    }

    private static func decodeCompressed(_ data: UnsafeRawBufferPointer, into columns: inout MetricColumns) throws {
        var header = ByteReader(data)
        _ = try header.byte()
        let count = try header.count(atMost: maxCompressedCount)
        let coding = ValueCoding(rawValue: try header.byte())
        var factor: Int64 = 1
        var plainWidth: Int?
        if coding == .ratios || coding == .plainRatios {
            let raw = try header.varint()
            guard raw >= 1, raw < 1 << 53 else { throw CorruptBlock() }
            factor = Int64(raw)
        }
        if coding == .plainRatios {
            let width = Int(try header.byte())
            guard width <= 64 else { throw CorruptBlock() }
            plainWidth = width
        }
        guard let coding else { throw CorruptBlock() }
        var reader = BitReader(data, offset: header.offset)
        columns.reserveCapacity(forAppending: min(count, data.count * 8))
        try readRuns(count: count, from: &reader) { columns.steps.append($0) }
        try readRuns(count: count, from: &reader) { columns.wallclocks.append(Int64(bitPattern: $0)) }
        switch coding {
        case .xor:
            guard count > 0 else { return }
            var bits = try reader.read(bits: 64)
            columns.values.append(Double(bitPattern: bits))
            var floats = XORFloats()
            try ZeroRuns.decode(
                count: count - 1, from: &reader,
                zeros: { run in for _ in 0..<run { columns.values.append(Double(bitPattern: bits)) } },
                other: { reader in
                    bits ^= try floats.readChange(from: &reader)
                    columns.values.append(Double(bitPattern: bits))
                })
        case .ratios, .plainRatios:
            var (p, q): (Int64, Int64) = (0, 1)
            var value = 0.0
            try ZeroRuns.decode(
                count: count, from: &reader,
                zeros: { run in for _ in 0..<run { columns.values.append(value) } },
                other: { reader in
                    let (movedP, pOverflow) = if let plainWidth {
                        (Varint.unzigzag(try reader.read(bits: plainWidth)), false)
                    } else {
                        p.addingReportingOverflow(try DeltaOfDelta.readSigned(widths: numeratorWidths, from: &reader))
                    }
                    let (movedQ, qOverflow) = q.addingReportingOverflow(try DeltaOfDelta.readSigned(widths: denominatorWidths, from: &reader))
                    let (scaled, scaleOverflow) = movedP.multipliedReportingOverflow(by: factor)
                    guard !pOverflow, !qOverflow, !scaleOverflow, movedQ >= 1, movedQ <= Int64(Ratios.maxDenominator) else {
                        throw CorruptBlock()
                    }
                    (p, q) = (movedP, movedQ)
                    value = Double(scaled) / Double(q)
                    columns.values.append(value)
                })
        }
    }

    private static func decodeVersion2(_ data: UnsafeRawBufferPointer, into columns: inout MetricColumns) throws {
        var header = ByteReader(data)
        _ = try header.byte()
        // Each point takes at least a bit for each of its three columns.
        let count = try header.count(atMost: (data.count - header.offset) * 8 / 3)
        var reader = BitReader(data, offset: header.offset)
        columns.reserveCapacity(forAppending: count)
        var steps = DeltaOfDelta()
        for _ in 0..<count { columns.steps.append(try steps.decode(from: &reader)) }
        var wallclocks = DeltaOfDelta()
        for _ in 0..<count { columns.wallclocks.append(Int64(bitPattern: try wallclocks.decode(from: &reader))) }
        var values = XORFloats()
        for _ in 0..<count { columns.values.append(try values.decode(from: &reader)) }
    }

    private static func decodePacked(_ data: UnsafeRawBufferPointer, into columns: inout MetricColumns) throws {
        var reader = ByteReader(data)
        guard try reader.byte() == version else { throw CorruptBlock() }
        let mixed = try reader.byte() == 1
        let count = try reader.count(atMost: data.count)
        var kinds: [UInt8] = []
        if mixed {
            kinds.reserveCapacity(count)
            for _ in 0..<count { kinds.append(try reader.byte()) }
        }
        let base = columns.count
        var step: UInt64 = 0
        for _ in 0..<count {
            step = step &+ UInt64(bitPattern: Varint.unzigzag(try reader.varint()))
            columns.steps.append(step)
        }
        var wallclock: Int64 = 0
        for _ in 0..<count {
            wallclock = wallclock &+ Varint.unzigzag(try reader.varint())
            columns.wallclocks.append(wallclock)
        }
        for index in 0..<count {
            switch mixed ? kinds[index] : 0 {
            case 0:
                columns.values.append(Double(bitPattern: try reader.uint64LE()))
            case 1:
                let bytes = try reader.bytes(try reader.count(atMost: data.count))
                columns.nonFloat[base + index] = .string(String(decoding: bytes, as: UTF8.self))
                columns.values.append(.nan)
            case 2:
                columns.nonFloat[base + index] = .bytes(Array(try reader.bytes(try reader.count(atMost: data.count))))
                columns.values.append(.nan)
            default:
                throw CorruptBlock()
            }
        }
    }

    struct ByteReader {
        let data: UnsafeRawBufferPointer
        var offset = 0

        init(_ data: UnsafeRawBufferPointer) { self.data = data }

        mutating func byte() throws -> UInt8 {
            guard offset < data.count else { throw CorruptBlock() }
            defer { offset += 1 }
            return data[offset]
        }

        mutating func varint() throws -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < data.count, shift < 64 else { throw CorruptBlock() }
                let byte = data[offset]
                offset += 1
                result |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return result }
                shift += 7
            }
        }

        mutating func uint64LE() throws -> UInt64 {
            guard offset + 8 <= data.count else { throw CorruptBlock() }
            defer { offset += 8 }
            return UInt64(littleEndian: data.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }

        /// A varint that counts something, refused past `limit` (a forged one may not fit an Int).
        mutating func count(atMost limit: Int) throws -> Int {
            let raw = try varint()
            guard raw <= UInt64(max(0, limit)) else { throw CorruptBlock() }
            return Int(raw)
        }

        mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer.SubSequence {
            guard count >= 0, count <= data.count - offset else { throw CorruptBlock() }
            defer { offset += count }
            return data[offset..<(offset + count)]
        }
    }
}
