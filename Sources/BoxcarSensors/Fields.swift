/// Calls `body` with the whitespace-separated fields of each line that has any, as slices of
/// `bytes`. Split on the bytes, into one array reused from line to line: making Strings and an
/// array per line was most of the cost of reading /proc/meminfo, /proc/stat and their kind.
func forEachLine(_ bytes: [UInt8], _ body: ([ArraySlice<UInt8>]) throws -> Void) rethrows {
    var fields: [ArraySlice<UInt8>] = []
    fields.reserveCapacity(32)
    var start = 0
    for index in 0...bytes.count {
        let byte = index < bytes.count ? bytes[index] : UInt8(ascii: "\n")
        guard byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n") else { continue }
        if index > start { fields.append(bytes[start..<index]) }
        start = index + 1
        if byte == UInt8(ascii: "\n") && !fields.isEmpty {
            try body(fields)
            fields.removeAll(keepingCapacity: true)
        }
    }
}

/// A field of a /proc or /sys line, read without making a String where it is a number.
extension ArraySlice<UInt8> {
    /// An unsigned decimal integer; nil for anything else or one past UInt64.max.
    var integer: UInt64? {
        guard !isEmpty else { return nil }
        var value: UInt64 = 0
        for byte in self {
            guard byte >= 48 && byte <= 57 else { return nil }
            let (times10, over1) = value.multipliedReportingOverflow(by: 10)
            let (sum, over2) = times10.addingReportingOverflow(UInt64(byte - 48))
            guard !over1 && !over2 else { return nil }
            value = sum
        }
        return value
    }

    /// A decimal number as /proc writes them ("12", "-3", "0.25"); others go through Double's
    /// own parser.
    var number: Double? {
        if let value = integer { return Double(value) }
        // digits.digits: one exact integer (15 digits at most) divided once, rounded as
        // Double("…") rounds it.
        if count <= 16, let dot = firstIndex(of: UInt8(ascii: ".")),
            let whole = self[..<dot].integer, let fraction = self[(dot + 1)...].integer
        {
            let scale = (0..<(endIndex - dot - 1)).reduce(1.0) { value, _ in value * 10 }
            return (Double(whole) * scale + Double(fraction)) / scale
        }
        return Double(string)
    }

    var string: String { String(decoding: self, as: UTF8.self) }

    func equals(_ text: StaticString) -> Bool {
        text.withUTF8Buffer { elementsEqual($0) }
    }

    func hasPrefix(_ text: StaticString) -> Bool {
        text.withUTF8Buffer { count >= $0.count && prefix($0.count).elementsEqual($0) }
    }
}

/// The unsigned decimal integers of `bytes[start...]`, in order, each field ended by any byte that
/// is not a digit, handed to `body` with their index: a hot-path parser for /proc lines that
/// makes no Strings and no array. Returns how many there were (at most `limit`).
@discardableResult
func forEachInteger(_ bytes: [UInt8], from start: Int = 0, limit: Int = .max, _ body: (Int, UInt64) -> Void) -> Int {
    var count = 0
    var value: UInt64 = 0
    var inNumber = false
    var index = start
    while index < bytes.count && count < limit {
        let byte = bytes[index]
        if byte >= 48 && byte <= 57 {
            value = value &* 10 &+ UInt64(byte - 48)
            inNumber = true
        } else if inNumber {
            body(count, value)
            count += 1
            value = 0
            inNumber = false
        }
        index += 1
    }
    if inNumber && count < limit {
        body(count, value)
        count += 1
    }
    return count
}

extension StringProtocol {
    /// Without `character` at either end.
    func trimmingCharacters(in character: Character) -> String {
        String(drop { $0 == character }.reversed().drop { $0 == character }.reversed())
    }
}
