import BoxcarAPI
import BoxcarModel
import Foundation
import PropertyBased
import SwiftProtobuf
import Testing

/// Metadata conversion over random values: any finite JSON tree (strings with any characters,
/// numbers of any magnitude, deep nesting) comes back equal from google.protobuf.Value, from its
/// wire bytes and from the JSON text the store keeps; the validation that guards the store
/// accepts exactly the finite ones.
@Suite struct MetadataPropertyTests {
    /// A JSON tree built from a stream of random numbers, so the library can shrink a failure to
    /// a short stream.
    static func tree(_ numbers: inout ArraySlice<UInt64>, depth: Int = 0) -> JSONValue {
        guard let first = numbers.popFirst() else { return .null }
        let choice = depth >= 5 ? first % 5 : first % 7
        let payload = numbers.popFirst() ?? 0
        switch choice {
        case 0: return .null
        case 1: return .bool(payload % 2 == 0)
        case 2: return .number(Double(bitPattern: payload).isFinite ? Double(bitPattern: payload) : Double(payload))
        case 3: return .number(Double(Int64(bitPattern: payload) >> 11))  // exact integers up to 2^53
        case 4: return .string(string(payload, &numbers))
        case 5: return .array((0..<Int(payload % 4)).map { _ in tree(&numbers, depth: depth + 1) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int(payload % 4) {
                object[string(numbers.popFirst() ?? 0, &numbers)] = tree(&numbers, depth: depth + 1)
            }
            return .object(object)
        }
    }

    /// Any Unicode scalars, control characters, quotes and backslashes included.
    static func string(_ length: UInt64, _ numbers: inout ArraySlice<UInt64>) -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int(length % 12) {
            let raw = UInt32(truncatingIfNeeded: numbers.popFirst() ?? 65) % 0x11_0000
            scalars.append(Unicode.Scalar(raw) ?? "\u{FFFD}")
        }
        return String(scalars)
    }

    @Test func finiteTreesRoundTripThroughProtobufWireAndJSON() async {
        await propertyCheck(count: 400, input: Gen.uint64().array(of: 1...80)) { numbers in
            var stream = numbers[...]
            let value = Self.tree(&stream)
            #expect(JSONValue(value.protobuf) == value)
            let wire = try Google_Protobuf_Value(serializedBytes: value.protobuf.serializedBytes() as [UInt8])
            #expect(JSONValue(wire) == value)
            #expect(try JSONValue(jsonText: value.jsonText()) == value)
        }
    }

    @Test func validationRefusesExactlyTheNonFiniteNumbers() {
        // Every special number at every depth up to 6, in arrays and objects by turns.
        let specials: [Double] = [.nan, .infinity, -.infinity, 0, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        for number in specials {
            for depth in 0...6 {
                var value = JSONValue.number(number)
                for level in 0..<depth { value = level % 2 == 0 ? .array([value]) : .object(["k": value]) }
                let accepted = (try? Limits.standard.checkMetadata(["key": value])) != nil
                #expect(accepted == number.isFinite, "\(number) at depth \(depth)")
            }
        }
    }
}
