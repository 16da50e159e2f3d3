import BoxcarAPI
import BoxcarModel
@testable import BoxcarRemoteWrite
import PropertyBased
import Testing

/// Snappy's block format read back: the test's own decoder, written from the format's
/// description, so that the compressor is checked by something it does not share code with.
func snappyDecode(_ input: [UInt8]) throws -> [UInt8] {
    struct Malformed: Error {}
    var index = 0
    var length = 0
    var shift = 0
    while true {
        guard index < input.count else { throw Malformed() }
        let byte = input[index]
        index += 1
        length |= Int(byte & 0x7F) << shift
        shift += 7
        if byte < 0x80 { break }
    }
    var out: [UInt8] = []
    while index < input.count {
        let tag = input[index]
        index += 1
        switch tag & 3 {
        case 0:
            var count = Int(tag >> 2) + 1
            if count > 60 {
                let bytes = count - 60
                count = 0
                for extra in 0..<bytes { count |= Int(input[index + extra]) << (8 * extra) }
                count += 1
                index += bytes
            }
            guard index + count <= input.count else { throw Malformed() }
            out += input[index..<index + count]
            index += count
        case 1:
            let count = Int((tag >> 2) & 7) + 4
            let offset = Int(tag >> 5) << 8 | Int(input[index])
            index += 1
            guard offset > 0, offset <= out.count else { throw Malformed() }
            for _ in 0..<count { out.append(out[out.count - offset]) }
        case 2:
            let count = Int(tag >> 2) + 1
            let offset = Int(input[index]) | Int(input[index + 1]) << 8
            index += 2
            guard offset > 0, offset <= out.count else { throw Malformed() }
            for _ in 0..<count { out.append(out[out.count - offset]) }
        default:
            throw Malformed()  // the compressor never writes 4-byte offsets
        }
    }
    guard out.count == length else { throw Malformed() }
    return out
}

@Suite struct SnappyTests {
    @Test func knownEncodings() throws {
        #expect(Snappy.compress([]) == [0])
        #expect(Snappy.compress(Array("a".utf8)) == [1, 0, UInt8(ascii: "a")])
        // 100 × "a": one literal, then copies of the byte before (offset 1).
        let repeated = Snappy.compress([UInt8](repeating: 97, count: 100))
        #expect(repeated.count < 12)
        #expect(try snappyDecode(repeated) == [UInt8](repeating: 97, count: 100))
    }

    @Test func roundTripsAndCompressesWhatRepeats() async throws {
        await propertyCheck(count: 200, input: Gen.uint8(in: 0...3).array(of: 0...5_000)) { bytes in
            #expect((try? snappyDecode(Snappy.compress(bytes))) == bytes)
        }
        // Past the 64 KiB blocks the compressor works in, with matches up to their edges.
        var generator = SystemRandomNumberGenerator()
        let large = (0..<300_000).map { index in index % 1000 < 500 ? UInt8(index % 7) : UInt8.random(in: 0...255, using: &generator) }
        #expect(try snappyDecode(Snappy.compress(large)) == large)
        // A remote-write body repeats its label names and values: it shrinks.
        var text: [UInt8] = []
        for cpu in 0..<64 { text += Array("system_cpu_time_seconds_total{cpu=\"\(cpu)\",state=\"idle\"} 1234.5\n".utf8) }
        let compressed = Snappy.compress(text)
        #expect(compressed.count * 4 < text.count)
        #expect(try snappyDecode(compressed) == text)
    }
}

@Suite struct WriteRequestTests {
    func block(_ points: [(UInt64, Int64, Double)]) -> [UInt8] {
        var columns = MetricColumns()
        for (step, wallclock, value) in points { columns.append(step: step, wallclock: wallclock, value: value) }
        return MetricBlock.encode(columns)
    }

    @Test func blocksBecomeThePagesSeriesWithTheirOwnTimestamps() throws {
        var builder = WriteRequestBuilder(externalLabels: ["host": "node-1", "cluster.name": "a"])
        #expect(try builder.add(parentID: "host", key: #"system/system.cpu.time{cpu.logical_number="0",cpu.mode="idle"}"#, block: block([(1, 1_000_000_000, 5), (2, 2_000_000_000, 6)])))
        #expect(try builder.add(parentID: "host", key: #"system/system.cpu.time{cpu.logical_number="0",cpu.mode="idle"}"#, block: block([(3, 3_500_000_000, 7)])))
        // A rate whose counter is on the page is not sent; nor is a key that is not a machine's.
        #expect(try !builder.add(parentID: "host", key: "system/system.disk.io.rate{disk.io.direction=\"read\",system.device=\"vda\"}", block: block([(1, 1, 1)])))
        #expect(try !builder.add(parentID: "e1", key: "loss", block: block([(1, 1, 1)])))
        // A series stored under an experiment carries its id; a label of its own beats an external one.
        #expect(try builder.add(parentID: "e1", key: #"system/process.cpu.time{host="other",process.pid="42"}"#, block: block([(1, 1_000_000, 2)])))
        let series = builder.request.timeseries
        #expect(series.count == 2)
        #expect(series[0].labels.map { "\($0.name)=\($0.value)" } == [
            "__name__=system_cpu_time_seconds_total", "cluster_name=a", "cpu_logical_number=0", "cpu_mode=idle", "host=node-1",
        ])
        #expect(series[0].samples.map(\.timestamp) == [1000, 2000, 3500])
        #expect(series[0].samples.map(\.value) == [5, 6, 7])
        #expect(series[1].labels.map { "\($0.name)=\($0.value)" } == [
            "__name__=process_tree_cpu_time_seconds_total", "cluster_name=a", "experiment_id=e1", "host=other", "process_pid=42",
        ])
        #expect(builder.samples == 4)
    }

    @Test func trainersCgroupsGoAndTheirProcessesOnlyWhenAsked() throws {
        let cgroup = #"system/container.memory.usage{cgroup="/job"}"#
        let tree = #"system/process.cpu.time{process.pid="42"}"#
        let gpu = #"system/hw.gpu.process.memory.usage{gpu="0",process.pid="42"}"#
        var plain = WriteRequestBuilder(externalLabels: [:], processes: false)
        #expect(try plain.add(parentID: "e1", key: cgroup, block: block([(1, 1_000_000, 2)])))
        #expect(try !plain.add(parentID: "e1", key: tree, block: block([(1, 1_000_000, 2)])))
        #expect(try !plain.add(parentID: "e1", key: gpu, block: block([(1, 1_000_000, 2)])))
        #expect(plain.request.timeseries.map { $0.labels[0].value } == ["container_memory_usage_bytes"])
        var asked = WriteRequestBuilder(externalLabels: [:], processes: true)
        for key in [cgroup, tree, gpu] { #expect(try asked.add(parentID: "e1", key: key, block: block([(1, 1_000_000, 2)]))) }
        #expect(asked.request.timeseries.map { $0.labels[0].value } == [
            "container_memory_usage_bytes", "process_tree_cpu_time_seconds_total", "hw_gpu_process_memory_usage_bytes",
        ])
    }

    @Test func passwordsInURLsStayOutOfLogsAndLabels() {
        #expect(RemoteWriter.redacted("https://team:s3cret@mimir.example.org/api/v1/push") == "https://team@mimir.example.org/api/v1/push")
        #expect(RemoteWriter.redacted("http://127.0.0.1:9090/api/v1/write") == "http://127.0.0.1:9090/api/v1/write")
        #expect(RemoteWriter.redacted("http://a@b:9/x@y") == "http://a@b:9/x@y")
    }

    @Test func seriesKeysReadBackAsTheSamplerWroteThem() {
        let key = SeriesKey(parsing: #"system/system.filesystem.usage{system.device="/dev/x",system.filesystem.mountpoint="/mnt/a \"b\" \\c",system.filesystem.state="free"}"#)
        #expect(key?.name == "system.filesystem.usage")
        #expect(key?.labels.map(\.value) == ["/dev/x", #"/mnt/a "b" \c"#, "free"])
        #expect(SeriesKey(parsing: "system/system.memory.limit")?.labels.isEmpty == true)
        #expect(SeriesKey(parsing: "loss") == nil)
        #expect(SeriesKey(parsing: #"system/x{a="unterminated}"#) == nil)
    }
}
