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
public enum MetricBlock {
    public static let version: UInt8 = 1
    public static let compressedVersion: UInt8 = 2

    /// The smaller of the two versions: a steady or slowly moving float series compresses (a bit
    /// or a few a point), a noisy one (a training loss) may not, and strings and bytes are only
    /// in version 1.
    public static func encode(_ columns: MetricColumns) -> [UInt8] {
        let packed = encodePacked(columns)
        guard let compressed = encodeCompressed(columns), compressed.count < packed.count else { return packed }
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

    /// The version 2 block of `columns`; nil when a point is not a float (version 1 holds those).
    public static func encodeCompressed(_ columns: MetricColumns) -> [UInt8]? {
        guard columns.nonFloat.isEmpty else { return nil }
        var out: [UInt8] = [compressedVersion]
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
        // Each point takes at least a bit for each of its three columns.
        let count = try header.count(atMost: (data.count - header.offset) * 8 / 3)
        var reader = BitReader(data, offset: header.offset)
        columns.reserveCapacity(columns.count + count)
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
