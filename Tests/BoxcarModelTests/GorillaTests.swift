@testable import BoxcarModel
import PropertyBased
import Testing

/// The compressed block (version 3, and version 2 that agents wrote before it): every step,
/// wallclock and double comes back bit for bit, whatever their order, steady series cost a few
/// bits a block and ratios of small integers a byte or two a point.
@Suite struct GorillaTests {
    /// Records a failure as an issue rather than throwing it: PropertyBased drops what its
    /// property throws, and only recorded issues fail a property.
    func roundTrip(steps: [UInt64], wallclocks: [Int64], values: [Double], sourceLocation: SourceLocation = #_sourceLocation) {
        var columns = MetricColumns()
        for index in steps.indices {
            columns.append(step: steps[index], wallclock: wallclocks[index], value: values[index])
        }
        guard let data = MetricBlock.encodeCompressed(columns) else {
            Issue.record("float points were not compressed", sourceLocation: sourceLocation)
            return
        }
        #expect(data.first == MetricBlock.compressedVersion, sourceLocation: sourceLocation)
        var decoded = MetricColumns()
        do {
            try data.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
        } catch {
            Issue.record(error, "decoding \(columns.count) points", sourceLocation: sourceLocation)
        }
        #expect(decoded.steps == columns.steps, sourceLocation: sourceLocation)
        #expect(decoded.wallclocks == columns.wallclocks, sourceLocation: sourceLocation)
        #expect(decoded.values.map(\.bitPattern) == columns.values.map(\.bitPattern), sourceLocation: sourceLocation)
    }

    static let specials: [Double] = [
        0, -0.0, 1, -1, .nan, -.nan, Double(bitPattern: 0x7ff4_0000_0000_0001), .infinity, -.infinity,
        .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude,
        -.greatestFiniteMagnitude, Double(bitPattern: 0x000f_ffff_ffff_ffff), 0.1, 1e-300,
    ]

    @Test func anyBitsRoundTrip() async {
        await propertyCheck(count: 300, input: Gen.uint64().array(of: 0...200), Gen.int64().array(of: 200), Gen.uint64().array(of: 200)) { steps, wallclocks, bits in
            // Shrinking may shorten any of the three.
            let count = min(steps.count, wallclocks.count, bits.count)
            roundTrip(steps: Array(steps.prefix(count)), wallclocks: Array(wallclocks.prefix(count)), values: bits.prefix(count).map(Double.init(bitPattern:)))
        }
    }

    @Test func specialDoublesRoundTripInAnyOrder() async {
        await propertyCheck(count: 300, input: Gen.element(of: Self.specials).array(of: 1...120)) { values in
            let count = values.count
            roundTrip(steps: (0..<UInt64(count)).map { $0 }, wallclocks: (0..<Int64(count)).map { $0 * 1_000 }, values: values.map { $0! })
        }
    }

    @Test func nearbyIntegersAndTheirExtremesRoundTrip() async {
        // Steps and wallclocks that move by small amounts from anywhere, wrapping past the ends.
        await propertyCheck(count: 300, input: Gen.uint64(), Gen.int64(in: -70_000...70_000).array(of: 1...200), Gen.double(in: -1e6...1e6)) { start, moves, value in
            var steps: [UInt64] = []
            var step = start
            for move in moves {
                step = step &+ UInt64(bitPattern: move)
                steps.append(step)
            }
            let wallclocks = steps.map { Int64(bitPattern: $0 &* 3) }
            var values: [Double] = []
            var current = value
            for move in moves {
                current += Double(move % 7) * 0.001
                values.append(current)
            }
            roundTrip(steps: steps, wallclocks: wallclocks, values: values)
        }
    }

    func columns(_ values: [Double], steady: Bool = true) -> MetricColumns {
        var columns = MetricColumns()
        for (index, value) in values.enumerated() {
            let second = 1_764_000_000_000 + Int64(index) * 1_000
            columns.append(step: UInt64(second), wallclock: second * 1_000_000 + (steady ? 0 : Int64(index % 3) * 7), value: value)
        }
        return columns
    }

    @Test func ratiosOfSmallIntegersRoundTrip() async {
        // Shares of a tick's jiffies (denominators that drift), integers that are multiples of a
        // kB, whole rates, and negative ones: each a ratio, read back bit for bit whichever coding is smaller.
        await propertyCheck(count: 300, input: Gen.int64(in: -5_000...5_000).array(of: 1...300), Gen.int(in: 1...4)) { numerators, shape in
            let values: [Double] = numerators.enumerated().map { index, p in
                switch shape {
                case 1: Double(p.magnitude % 101) / Double(99 + index % 3)
                case 2: Double(p) * 1024 + 1e12
                case 3: Double(p) / 1_000_000
                default: Double(p) / 7
                }
            }
            let block = columns(values)
            guard let data = MetricBlock.encodeCompressed(block) else {
                Issue.record("float points were not compressed")
                return
            }
            #expect(MetricBlock.ratios(of: values) != nil)
            roundTrip(steps: block.steps, wallclocks: block.wallclocks, values: values)
        }
    }

    @Test func findsTheRatioOfEachDouble() {
        #expect(Ratios.ratio(of: 0.9, near: 100)! == (90, 100))
        #expect(Ratios.ratio(of: 92.0 / 101, near: 100)! == (92, 101))
        // The smallest denominator, moved to a multiple of it near the one before.
        #expect(Ratios.ratio(of: 0.5, near: 1)! == (1, 2))
        #expect(Ratios.ratio(of: 0.5, near: 99)! == (50, 100))
        #expect(Ratios.ratio(of: 123_456.0 / 1_000_000, near: 1)! == (1929, 15625))
        #expect(Ratios.ratio(of: 4096 * 3_000_001, near: 1)! == (4096 * 3_000_001, 1))
        for notARatio in [Double.pi, .nan, .infinity, -0.0, 0.1 + 0.2, 1e300, 0x1p53 + 2, .leastNonzeroMagnitude] {
            #expect(Ratios.ratio(of: notARatio, near: 1) == nil, "\(notARatio)")
        }
    }

    @Test func blocksOfVersionTwoAreStillRead() async {
        await propertyCheck(count: 200, input: Gen.uint64().array(of: 1...100)) { bits in
            var block = MetricColumns()
            for (index, random) in bits.enumerated() {
                block.append(step: random, wallclock: Int64(index) << 30, value: Double(bitPattern: random))
            }
            let data = MetricBlock.encodeVersion2(block)!
            #expect(data.first == MetricBlock.gorillaVersion)
            var decoded = MetricColumns()
            #expect(throws: Never.self) { try data.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) } }
            #expect(decoded.steps == block.steps)
            #expect(decoded.wallclocks == block.wallclocks)
            #expect(decoded.values.map(\.bitPattern) == block.values.map(\.bitPattern))
        }
    }

    @Test func aSamplersSeriesCostLittleMoreThanTheirChanges() throws {
        // 600 ticks a second apart on the dot (a compaction stretch).
        // The first point's step, wallclock and value, whole, and then a run of each.
        let constant = try #require(MetricBlock.encodeCompressed(columns(Array(repeating: 64, count: 600))))
        #expect(constant.count < 3 * 8 + 16)
        // A CPU state's share: jiffies over the tick's jiffies, 99 to 101 of them.
        var jiffies = SystemRandomNumberGenerator()
        let shares = (0..<600).map { index in Double(Int.random(in: 60...90, using: &jiffies)) / Double(99 + index % 3) }
        let share = try #require(MetricBlock.encodeCompressed(columns(shares)))
        #expect(share.count < 600 * 2)
        // Jumping about within its range: numerators as themselves (after the version, the count's 2 bytes).
        #expect(share[3] == MetricBlock.ValueCoding.plainRatios.rawValue)
        // With Gorilla's codecs alone: 6 bytes and more a point.
        #expect(try #require(MetricBlock.encodeVersion2(columns(shares))).count > 600 * 5)
        // Memory in use, in bytes: kB-multiples moving by a few MB a tick.
        let used = (0..<600).map { _ in Double(20_000_000 + Int.random(in: -3_000...3_000, using: &jiffies)) * 1024 }
        #expect(try #require(MetricBlock.encodeCompressed(columns(used))).count < 600 * 3)
        // A load average wandering by hundredths: numerators as changes, a byte a point.
        var hundredths = 150
        let load = (0..<600).map { _ in
            hundredths += Int.random(in: -3...3, using: &jiffies)
            return Double(hundredths) / 100
        }
        let loadBlock = try #require(MetricBlock.encodeCompressed(columns(load)))
        #expect(loadBlock[3] == MetricBlock.ValueCoding.ratios.rawValue)
        #expect(loadBlock.count < 600)
        // Timestamps off the schedule cost what they cost in version 2.
        #expect(try #require(MetricBlock.encodeCompressed(columns(Array(repeating: 64, count: 600), steady: false))).count < 600)
    }

    @Test func aBlockOfVersion3HoldsAtMostItsBound() throws {
        // A forged count past the bound is refused before anything is decoded; a series longer
        // than the bound is packed; one as long decodes whole.
        var columns = MetricColumns()
        for index in 0..<MetricBlock.maxCompressedCount { columns.append(step: UInt64(index), wallclock: Int64(index), value: 1) }
        let block = try #require(MetricBlock.encodeCompressed(columns))
        #expect(block.count < 64)
        var decoded = MetricColumns()
        try block.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
        #expect(decoded.count == MetricBlock.maxCompressedCount)
        columns.append(step: 1 << 40, wallclock: 0, value: 2)
        #expect(MetricBlock.encodeCompressed(columns) == nil)
        #expect(MetricBlock.encode(columns).first == MetricBlock.version)
    }

    @Test func extremesRoundTrip() {
        roundTrip(
            steps: [.max, 0, .max, 1, .max - 1, 1 << 63, (1 << 63) - 1],
            wallclocks: [.min, .max, -1, 0, .min, 1, .max],
            values: [.nan, -0.0, .infinity, .leastNonzeroMagnitude, 0, .greatestFiniteMagnitude, -.nan])
        roundTrip(steps: [42], wallclocks: [-7], values: [3.5])
        roundTrip(steps: [], wallclocks: [], values: [])
    }

    @Test func steadySeriesCostBitsAPoint() throws {
        // Sampled every second with a few ms of jitter: steps +1, a constant value.
        var columns = MetricColumns()
        var jitter = SystemRandomNumberGenerator()
        for tick in 0..<3_600 {
            columns.append(step: UInt64(tick), wallclock: 1_764_000_000_000_000_000 + Int64(tick) * 1_000_000_000 + Int64.random(in: 0...3_000_000, using: &jitter), value: 64)
        }
        let constant = try #require(MetricBlock.encodeCompressed(columns)).count
        // A step and a constant value take a bit each; the jittered wallclock about four bytes.
        #expect(constant < 3_600 * 5)
        // Without jitter, the whole point costs three bits.
        columns.wallclocks = (0..<3_600).map { 1_764_000_000_000_000_000 + Int64($0) * 1_000_000_000 }
        #expect(try #require(MetricBlock.encodeCompressed(columns)).count < 3_600 * 3 / 8 + 64)
        // Against 8 bytes a value, 1 a step and ~4 a wallclock in version 1.
        #expect(MetricBlock.encodePacked(columns).count > 3_600 * 9)
        #expect(MetricBlock.encode(columns).first == MetricBlock.compressedVersion)
    }

    @Test func encodeKeepsTheSmallerVersion() async {
        // Steady, noisy and jumping series: whichever version is smaller is the one written.
        await propertyCheck(count: 100, input: Gen.uint64().array(of: 1...100), Gen.int(in: 0...2)) { bits, shape in
            var columns = MetricColumns()
            for (index, random) in bits.enumerated() {
                let value: Double = switch shape {
                case 0: 42
                case 1: Double(bitPattern: random)
                default: Double(index) * 0.25
                }
                columns.append(step: shape == 1 ? random : UInt64(index), wallclock: Int64(index) * 1_000_000_000, value: value)
            }
            let sizes = [MetricBlock.encodePacked(columns).count, MetricBlock.encodeCompressed(columns)?.count ?? .max]
            #expect(MetricBlock.encode(columns).count == sizes.min())
        }
    }

    @Test func stringsAndBytesAreLeftToVersionOne() {
        let columns = MetricColumns([MetricPoint(step: 1, wallclock: 1, value: .string("x"))])
        #expect(MetricBlock.encodeCompressed(columns) == nil)
    }

    @Test func truncatedOrForgedBlocksAreReportedNotCrashing() async {
        var columns = MetricColumns()
        for index in 0..<50 { columns.append(step: UInt64(index * index), wallclock: Int64(index) << 40, value: Double(index) / 3) }
        let data = MetricBlock.encodeCompressed(columns)!
        for cut in 1..<data.count {
            var decoded = MetricColumns()
            #expect(throws: MetricBlock.CorruptBlock.self) {
                try Array(data.prefix(cut)).withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
            }
        }
        // Counts and lengths forged past what any Int holds, in every version; a count of
        // version 3 past its bound; a value coding that is none.
        let forged: [[UInt8]] = [
            [2] + [UInt8](repeating: 0xff, count: 9) + [0x01],
            [3] + [UInt8](repeating: 0xff, count: 9) + [0x01],
            [3, 0x81, 0x80, 0x40, 0, 0xff],
            [3, 1, 7, 0xff],
            [1, 0] + [UInt8](repeating: 0xff, count: 9) + [0x01],
            [1, 1, 1, 1, 0, 0] + [UInt8](repeating: 0xff, count: 8) + [0x7f],
        ]
        for block in forged {
            var decoded = MetricColumns()
            #expect(throws: MetricBlock.CorruptBlock.self) { try block.withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) } }
            #expect(decoded.isEmpty)
        }
        // Random bytes after the version: an error or some points, never a crash or a hang.
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0...64), Gen.element(of: [MetricBlock.gorillaVersion, MetricBlock.compressedVersion])) { bytes, version in
            var decoded = MetricColumns()
            _ = try? ([version!] + bytes).withUnsafeBytes { try MetricBlock.decode($0, into: &decoded) }
        }
    }
}
