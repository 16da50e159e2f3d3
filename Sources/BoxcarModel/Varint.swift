/// Base-128 varints, as protobuf writes integers and as the store's metric blocks pack steps and
/// times: seven bits a byte, low bits first, the high bit set on every byte but the last.
/// Inlinable: they run once per point on the hot paths of encoding.
public enum Varint {
    /// Bytes `value` takes as a varint (1 to 10).
    @inlinable @inline(__always)
    public static func size(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    @inlinable @inline(__always)
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// Small negative numbers as small unsigned ones (0, -1, 1, -2 → 0, 1, 2, 3), so that a
    /// delta of either sign takes few bytes.
    @inlinable @inline(__always)
    public static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    @inlinable @inline(__always)
    public static func unzigzag(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}
