import BoxcarAPI
import BoxcarModel
import Foundation
import SwiftProtobuf
import Testing

@Suite struct ConversionTests {
    @Test func metadataValuesRoundTripThroughProtobuf() throws {
        let value = JSONValue.object([
            "list": .array([.number(1), .string("two"), .null, .bool(false), .array([])]),
            "nested": .object(["deep": .object(["x": .number(-2.5e-8)])]),
        ])
        #expect(JSONValue(value.protobuf) == value)
        // And the wire form is what a ModelBox client builds with google.protobuf.Struct.
        let wire = try Google_Protobuf_Value(serializedBytes: value.protobuf.serializedBytes() as [UInt8])
        #expect(JSONValue(wire) == value)
    }

    @Test func timestampsKeepNanosecondsBeforeAndAfterTheEpoch() {
        for nanos: Int64 in [0, 1, 1_764_000_000_123_456_789, -1, -1_500_000_000] {
            let timestamp = Google_Protobuf_Timestamp(nanoseconds: nanos)
            #expect(timestamp.nanos >= 0 && timestamp.nanos < 1_000_000_000)
            #expect(timestamp.nanoseconds == nanos)
        }
        #expect(Google_Protobuf_Timestamp(seconds: .max, nanos: 0).nanoseconds == .max)
    }

    @Test func modelBoxMetricValuesKeepTheirBits() throws {
        // An unsigned wallclock above Int64.max survives the signed store and comes back equal.
        var wire = Modelbox_MetricsValue()
        wire.step = .max
        wire.wallclockTime = UInt64.max - 5
        wire.fVal = 0.1
        let point = try #require(MetricPoint(wire))
        #expect(point.value == .float(Double(Float(0.1))))
        #expect(Modelbox_MetricsValue(point) == wire)
        #expect(MetricPoint(Modelbox_MetricsValue()) == nil)
    }

    @Test func seriesColumnsCarryNonFloatValuesByIndex() {
        let points = [
            MetricPoint(step: 1, wallclock: 1, value: .float(2)),
            MetricPoint(step: 2, wallclock: 2, value: .string("s")),
            MetricPoint(step: 3, wallclock: 3, value: .bytes([9])),
        ]
        let columns = MetricColumns(points)
        #expect(Boxcar_V1_SeriesColumns(key: "k", columns: columns).columns.points == points)
        let metrics = Modelbox_Metrics(key: "k", columns: columns)
        #expect(metrics.values.compactMap(MetricPoint.init) == points)
    }

    @Test func eventsWithoutMetadataComeBackWithout() {
        let event = Event(parentID: "p", name: "e", source: "s", wallclock: 5, metadata: [:], createdAt: 0)
        let wire = Modelbox_Event(event)
        #expect(!wire.hasMetadata)
        #expect(wire.domain(parentID: "p") == event)
    }
}

@Suite struct GetMetricsEncodingTests {
    @Test func writesWhatSwiftProtobufWrites() throws {
        var loss = MetricColumns()
        loss.append(step: 0, wallclock: 0, value: 0)  // zero fields are omitted, as proto3 does
        loss.append(step: 1, wallclock: 1_700_000_001, value: 0.5)
        loss.append(step: .max, wallclock: -1, value: -.infinity)
        loss.append(MetricPoint(step: 300, wallclock: 7, value: .string("héllo")))
        loss.append(MetricPoint(step: 301, wallclock: 8, value: .bytes(Array(repeating: 7, count: 200))))
        var empty = MetricColumns()
        empty.reserveCapacity(0)
        let series: [(key: String, columns: MetricColumns)] = [("loss", loss), ("", empty), (String(repeating: "k", count: 200), loss)]

        let expected = Modelbox_GetMetricsResponse.with { response in
            response.metrics = series.map { Modelbox_Metrics(key: $0.key, columns: $0.columns) }
        }
        let bytes = GetMetricsEncoding.encode(series)
        #expect(try Modelbox_GetMetricsResponse(serializedBytes: bytes) == expected)
        #expect(bytes == (try expected.serializedBytes() as [UInt8]))
        // The response the service answers with goes out as the same bytes.
        #expect((try GetMetricsEncoding.response(series).serializedBytes() as [UInt8]) == bytes)
    }
}

/// The message built field by field, as swift-protobuf would: the reference GetMetricsEncoding is
/// held to.
extension Modelbox_Metrics {
    init(key: String, columns: MetricColumns) {
        self.init()
        self.key = key
        values.reserveCapacity(columns.count)
        for index in 0..<columns.count {
            var value = Modelbox_MetricsValue()
            value.step = columns.steps[index]
            value.wallclockTime = UInt64(bitPattern: columns.wallclocks[index])
            switch columns.nonFloat[index] {
            case .string(let string): value.value = .sTensor(string)
            case .bytes(let bytes): value.value = .bTensor(Data(bytes))
            case .float, nil: value.value = .fVal(Float(columns.values[index]))
            }
            values.append(value)
        }
    }
}
