/// Snappy's block format (google/snappy, format_description.txt): what remote write bodies are
/// compressed with. Only the compressor: the agent never reads a snappy body.
///
/// The uncompressed length as a varint, then elements: literals (tag 00) and copies of bytes
/// already written (tag 01: length 4-11, offset below 2,048; tag 10: length 1-64, offset below
/// 65,536). Matches are found as snappy's own compressor finds them: a hash of the next four
/// bytes names the last position that had the same hash, within the current 64 KiB block. It is
/// a few dozen lines where linking libsnappy would make every machine that runs the agent
/// install it.
public enum Snappy {
    static let blockSize = 1 << 16
    static let hashBits = 14

    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + input.count + input.count / 6)
        var length = UInt64(input.count)
        while length >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: length) | 0x80)
            length >>= 7
        }
        out.append(UInt8(length))
        input.withUnsafeBufferPointer { bytes in
            var table = [Int32](repeating: -1, count: 1 << hashBits)
            var blockStart = 0
            while blockStart < bytes.count {
                let blockEnd = min(blockStart + blockSize, bytes.count)
                compressBlock(bytes, from: blockStart, to: blockEnd, table: &table, into: &out)
                blockStart = blockEnd
            }
        }
        return out
    }

    private static func load32(_ bytes: UnsafeBufferPointer<UInt8>, _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }

    private static func hash(_ value: UInt32) -> Int {
        Int((value &* 0x1E35_A7BD) >> (32 - UInt32(hashBits)))
    }

    private static func compressBlock(
        _ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, table: inout [Int32], into out: inout [UInt8]
    ) {
        var literalStart = start
        var position = start
        // Positions in the table from an earlier block are out of reach: forget them.
        for index in table.indices { table[index] = -1 }
        while position + 4 <= end {
            let value = load32(bytes, position)
            let slot = hash(value)
            let candidate = Int(table[slot])
            table[slot] = Int32(position)
            guard candidate >= start, load32(bytes, candidate) == value else {
                position += 1
                continue
            }
            var matchEnd = position + 4
            while matchEnd < end, bytes[matchEnd] == bytes[candidate + matchEnd - position] { matchEnd += 1 }
            emitLiteral(bytes, from: literalStart, to: position, into: &out)
            emitCopy(offset: position - candidate, length: matchEnd - position, into: &out)
            position = matchEnd
            literalStart = position
        }
        emitLiteral(bytes, from: literalStart, to: end, into: &out)
    }

    private static func emitLiteral(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int, into out: inout [UInt8]) {
        let count = end - start
        guard count > 0 else { return }
        let n = UInt32(count - 1)
        if n < 60 {
            out.append(UInt8(n << 2))
        } else {
            var extra: [UInt8] = []
            var rest = n
            while rest > 0 {
                extra.append(UInt8(truncatingIfNeeded: rest))
                rest >>= 8
            }
            out.append(UInt8((59 + extra.count) << 2))
            out += extra
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<end]))
    }

    private static func emitCopy(offset: Int, length: Int, into out: inout [UInt8]) {
        var length = length
        // Long matches as copies of 64, leaving at least 4 for a last one of 1-byte offset form.
        while length >= 68 {
            emitCopy2(offset: offset, length: 64, into: &out)
            length -= 64
        }
        if length > 64 {
            emitCopy2(offset: offset, length: 60, into: &out)
            length -= 60
        }
        if length < 12, offset < 2048 {
            out.append(UInt8(1 | ((length - 4) << 2) | ((offset >> 8) << 5)))
            out.append(UInt8(truncatingIfNeeded: offset))
        } else {
            emitCopy2(offset: offset, length: length, into: &out)
        }
    }

    private static func emitCopy2(offset: Int, length: Int, into out: inout [UInt8]) {
        out.append(UInt8(2 | ((length - 1) << 2)))
        out.append(UInt8(truncatingIfNeeded: offset))
        out.append(UInt8(truncatingIfNeeded: offset >> 8))
    }
}
