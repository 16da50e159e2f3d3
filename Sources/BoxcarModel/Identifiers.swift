import Crypto

/// How object ids are made.
///
/// Experiment ids follow ModelBox (lowercase hex SHA-1 of the UTF-8 bytes of the name followed by
/// those of the namespace), so an agent and a ModelBox upstream agree on them and creating the same
/// experiment twice finds the first. Models, versions and checkpoints are derived the same way from
/// what names them, with a kind prefix so that no two kinds of object can share an id. Files get a
/// random id: the same path may be tracked or uploaded many times.
public enum Identifiers {
    public static func experiment(name: String, namespace: String) -> String {
        sha1Hex(name + namespace)
    }

    public static func model(name: String, namespace: String) -> String {
        sha1Hex("model\u{0}" + name + "\u{0}" + namespace)
    }

    public static func modelVersion(modelID: String, name: String, version: String) -> String {
        sha1Hex("model-version\u{0}" + modelID + "\u{0}" + name + "\u{0}" + version)
    }

    public static func checkpoint(experimentID: String, epoch: UInt64) -> String {
        sha1Hex("checkpoint\u{0}" + experimentID + "\u{0}" + String(epoch))
    }

    /// 128 random bits as 32 lowercase hex digits.
    public static func randomFileID() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return hex64(high) + hex64(low)
    }

    public static func sha1Hex(_ text: String) -> String {
        Insecure.SHA1.hash(data: Array(text.utf8)).hexString
    }

    private static func hex64(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

extension Sequence where Element == UInt8 {
    /// Lowercase hex digits, two per byte.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
