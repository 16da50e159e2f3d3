import BoxcarModel
import Testing

@testable import boxcar

/// The pieces of a run's chart (`boxcar plot`, the agent's page) a person's input goes through:
/// key patterns, times and spans, wallclocks in the unit a client sent, and placing the machine's
/// points at the trainer's steps.
@Suite struct RunChartTests {
    @Test func patternsMatchWholeKeys() {
        #expect(glob("loss", matches: "loss"))
        #expect(!glob("loss", matches: "loss/val"))
        #expect(glob("loss*", matches: "loss/val"))
        #expect(glob("system/hw.gpu.*{*index=\"1\"}", matches: #"system/hw.gpu.power{hw.id="GPU-1",index="1"}"#))
        #expect(!glob("system/hw.gpu.*{*index=\"1\"}", matches: #"system/hw.gpu.power{hw.id="GPU-1",index="10"}"#))
        #expect(glob("l?ss", matches: "loss") && !glob("l?ss", matches: "los"))
        #expect(glob("*", matches: "") && glob("**a*", matches: "banana"))
    }

    @Test func timesAndSpans() throws {
        let last: Int64 = 1_764_756_000_000_000_000  // 2025-12-03T10:00:00Z
        #expect(try RunChart.time("10m", last: last) == last - 600_000_000_000)
        #expect(try RunChart.time("2026-12-03T10:00:00Z", last: last) == 1_796_292_000_000_000_000)
        #expect(try RunChart.time("2026-12-03T10:00:00.5Z", last: last) == 1_796_292_000_500_000_000)
        // Nonsense is an error, not a crash: an unreadable time, a span past any clock, a date
        // past what a wallclock in nanoseconds holds.
        #expect(throws: CLIError.self) { try RunChart.time("yesterday", last: last) }
        #expect(try RunChart.time("999999999999999d", last: last) == .min)
        #expect(throws: CLIError.self) { try RunChart.time("2300-01-01T00:00:00Z", last: last) }
    }

    @Test func wallclocksAreReadInTheUnitTheyWereSentIn() {
        let nanoseconds: Int64 = 1_764_756_000_123_456_789
        #expect(RunChart.nanoseconds(nanoseconds) == nanoseconds)
        #expect(RunChart.nanoseconds(1_764_756_000_123_456) == 1_764_756_000_123_456_000)
        #expect(RunChart.nanoseconds(1_764_756_000_123) == 1_764_756_000_123_000_000)
        #expect(RunChart.nanoseconds(1_764_756_000) == 1_764_756_000_000_000_000)
        #expect(RunChart.nanoseconds(99_999_999_999) == .max)  // 5138 AD in seconds: past any clock
    }

    @Test func theMachinesPointsArePlacedAtTheTrainersStepByTheirTime() {
        // Steps 10 and 20 logged at 1 s and 2 s (in seconds, as a ModelBox client may send them).
        var columns = MetricColumns()
        columns.steps = [10, 20]
        columns.wallclocks = [1_764_756_001, 1_764_756_002]
        columns.values = [1, 2]
        let clock = StepClock([columns])
        let second: Int64 = 1_000_000_000
        let start = 1_764_756_001 * second
        #expect(clock.step(at: start) == 10)
        #expect(clock.step(at: start + second / 4) == 12.5)
        #expect(clock.step(at: start + second) == 20)
        #expect(clock.step(at: start - 1) == nil)
        #expect(clock.step(at: start + second + 1) == nil)

        // A time clamped to Int64.min beside today's: placed, not a trap.
        columns.wallclocks = [.min, 1_764_756_002]
        let far = StepClock([columns])
        #expect(far.step(at: 0).map { $0 > 10 && $0 < 20 } == true)
    }
}
