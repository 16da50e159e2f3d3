import BoxcarModel
import Testing

@Suite struct ValidationTests {
    let limits = Limits()

    @Test func namesMustBePresentShortAndPrintable() throws {
        try limits.checkName("resnet-50", "name")
        #expect(throws: ValidationError("name must not be empty")) { try limits.checkName("", "name") }
        #expect(throws: ValidationError("name is 257 bytes; the limit is 256")) {
            try limits.checkName(String(repeating: "a", count: 257), "name")
        }
        #expect(throws: ValidationError("name must not contain control characters")) {
            try limits.checkName("a\nb", "name")
        }
    }

    @Test func metadataRefusesNaNAndDeepNesting() throws {
        try limits.checkMetadata(["lr": .number(0.1), "layers": .array([.object(["n": .null])])])
        #expect(throws: ValidationError.self) { try limits.checkMetadata(["x": .number(.nan)]) }
        var deep = JSONValue.null
        for _ in 0..<40 { deep = .array([deep]) }
        #expect(throws: ValidationError.self) { try limits.checkMetadata(["x": deep]) }
    }

    @Test func metadataIsBoundedInTotalSize() {
        let big = JSONValue.string(String(repeating: "x", count: limits.maxMetadataBytes))
        #expect(throws: ValidationError.self) { try limits.checkMetadata(["x": big]) }
    }

    @Test func jsonTextRoundTripsNestedValues() throws {
        let value = JSONValue.object([
            "a": .array([.number(1.5), .bool(true), .null, .string("s\"q")]),
            "b": .object(["c": .number(-0.000123), "d": .array([])]),
            "e": .number(1e300),
        ])
        #expect(try JSONValue(jsonText: value.jsonText()) == value)
    }
}
