@testable import BoxcarSampling
import Testing

/// Ticks are stamped on their schedule, an interval apart to the nanosecond, while the wall clock
/// agrees within the tolerance; a tick read late keeps its own time, a wall clock that jumped
/// anchors the schedule anew.
@Suite struct TickStampsTests {
    let start = ContinuousClock.now
    let second: Int64 = 1_000_000_000

    /// The n-th tick of a one-second schedule, woken `late` after it was due, the wall clock
    /// `offset` from where it began (1,700,000,000.123456789 s).
    func stamp(_ stamps: inout TickStamps, _ n: Int, late: Duration = .zero, offset: Int64 = 0) -> Int64 {
        let due = start.advanced(by: .seconds(n))
        let wall = 1_700_000_000_123_456_789 + Int64(n) * second + offset + late.nanoseconds
        return stamps.stamp(scheduled: due, now: due.advanced(by: late), wallclock: wall)
    }

    @Test func ticksWokenLateWithinTheToleranceAreStampedOnTheSchedule() {
        var stamps = TickStamps(interval: .seconds(1))
        #expect(stamps.tolerance == 25_000_000)
        let first = stamp(&stamps, 0, late: .milliseconds(3))
        // On a whole millisecond at or before the time the tick was due.
        #expect(first % 1_000_000 == 0)
        #expect(first == 1_700_000_000_123_000_000)
        let jitter: [Duration] = [.milliseconds(1), .milliseconds(20), .microseconds(150), .milliseconds(7)]
        for (n, late) in jitter.enumerated() {
            #expect(stamp(&stamps, n + 1, late: late) == first + Int64(n + 1) * second)
        }
        // Read later than the tolerance: its own time, and the schedule stays.
        #expect(stamp(&stamps, 5, late: .milliseconds(300)) == 1_700_000_000_123_456_789 + 5 * second + 300_000_000)
        #expect(stamp(&stamps, 6, late: .milliseconds(2)) == first + 6 * second)
    }

    @Test func aWallClockThatJumpedAnchorsTheScheduleAnew() {
        var stamps = TickStamps(interval: .seconds(1))
        let first = stamp(&stamps, 0)
        #expect(stamp(&stamps, 1) == first + second)
        // NTP stepped the clock 2 s forward: the new schedule starts at the new time.
        let stepped = stamp(&stamps, 2, offset: 2 * second)
        #expect(stepped == first + 4 * second)
        #expect(stamp(&stamps, 3, late: .milliseconds(4), offset: 2 * second) == stepped + second)
        // Drift within the tolerance is absorbed; beyond it, a new anchor.
        #expect(stamp(&stamps, 4, offset: 2 * second + 10_000_000) == stepped + 2 * second)
        #expect(stamp(&stamps, 5, offset: 2 * second + 40_000_000) == first + 7 * second + 40_000_000)
    }

    @Test func aStampNeverRepeatsNorGoesBackUnlessTheWallClockWasSetBack() {
        var stamps = TickStamps(interval: .seconds(1))
        let first = stamp(&stamps, 0)
        // Woken 1.01 s late, it keeps its own time: past where the next is planned.
        let late = stamp(&stamps, 5, late: .milliseconds(1010))
        #expect(late == 1_700_000_000_123_456_789 + 6 * second + 10_000_000)
        #expect(stamp(&stamps, 6) == late + 1_000_000)
        #expect(stamp(&stamps, 7) == first + 7 * second)
        // The wall clock set back 2 s: followed.
        #expect(stamp(&stamps, 8, offset: -2 * second) == first + 6 * second)
    }

    @Test func aShortIntervalHasATenthOfItAsTolerance() {
        #expect(TickStamps(interval: .milliseconds(100)).tolerance == 10_000_000)
    }

    /// Rates are taken over the stamps where they agree with the time measured between the reads
    /// (a counter's change over exactly a second stays a whole number), else over the time measured.
    @Test func ratesAreTakenOverTheStampsWhileTheyAgreeWithTheClock() {
        let tolerance: Int64 = 25_000_000
        let measured = Duration.nanoseconds(second + 3_000_000)
        #expect(SensorSet.elapsed(measured: measured, from: 5 * second, to: 6 * second, tolerance: tolerance) == .seconds(1))
        // A tick read late keeps its own stamp: the stamps then say what the clock says.
        #expect(SensorSet.elapsed(measured: .milliseconds(1_400), from: 5 * second, to: 6 * second, tolerance: tolerance) == .milliseconds(1_400))
        // A wall clock that was set back, the first answer, a tick without a stamp.
        #expect(SensorSet.elapsed(measured: measured, from: 6 * second, to: 5 * second, tolerance: tolerance) == measured)
        #expect(SensorSet.elapsed(measured: measured, from: nil, to: 6 * second, tolerance: tolerance) == measured)
        #expect(SensorSet.elapsed(measured: nil, from: 5 * second, to: 6 * second, tolerance: tolerance) == nil)
        #expect(SensorSet.elapsed(measured: measured, from: 5 * second, to: nil, tolerance: tolerance) == measured)
    }
}
