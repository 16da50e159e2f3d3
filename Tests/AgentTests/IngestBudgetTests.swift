@testable import BoxcarServer
import BoxcarAPI
import BoxcarFlowControl
import BoxcarModel
import SwiftProtobuf
import Testing

/// The ingest budget counts what a Log batch holds, events and metadata by their size: counted
/// at a fixed 512 B or 1 KiB each, batches of large metadata once held 1.6 GB under 128 MiB.
@Suite struct IngestBudgetTests {
    @Test func largeMetadataAndEventsCountByTheirSize() throws {
        let large = Google_Protobuf_Value(stringValue: String(repeating: "x", count: 200_000))
        let small = Google_Protobuf_Value(stringValue: "x")
        func batch(_ value: Google_Protobuf_Value) -> Boxcar_V1_LogBatch {
            .with {
                $0.metadata = (0..<10).map { index in .with { $0.parentID = "run"; $0.metadata = ["k\(index)": value] } }
                $0.events = [.with { $0.parentID = "run"; $0.event = .with { $0.name = "e"; $0.metadata = .with { $0.metadata = ["k": value] } } }]
            }
        }
        let heavy = try batch(large).validated(Limits()).estimatedBytes
        let light = try batch(small).validated(Limits()).estimatedBytes
        #expect(heavy >= 11 * 200_000 * 2, "11 values of 200 KB counted as \(heavy) bytes")
        #expect(light < 11 * 1024, "11 one-byte values counted as \(light) bytes")
    }
}
