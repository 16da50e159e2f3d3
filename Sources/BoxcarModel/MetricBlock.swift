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
public enum MetricBlock {
    public static let version: UInt8 = 1

    public static func encode(_ columns: MetricColumns) -> [UInt8] {
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

    /// Appends the block's points to `columns`.
    public static func decode(_ data: UnsafeRawBufferPointer, into columns: inout MetricColumns) throws {
        var reader = ByteReader(data)
        guard try reader.byte() == version else { throw CorruptBlock() }
        let mixed = try reader.byte() == 1
        let count = Int(try reader.varint())
        guard count <= data.count else { throw CorruptBlock() }
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
                let bytes = try reader.bytes(Int(try reader.varint()))
                columns.nonFloat[base + index] = .string(String(decoding: bytes, as: UTF8.self))
                columns.values.append(.nan)
            case 2:
                columns.nonFloat[base + index] = .bytes(Array(try reader.bytes(Int(try reader.varint()))))
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

        mutating func bytes(_ count: Int) throws -> UnsafeRawBufferPointer.SubSequence {
            guard count >= 0, offset + count <= data.count else { throw CorruptBlock() }
            defer { offset += count }
            return data[offset..<(offset + count)]
        }
    }
}
