@testable import BoxcarFlowControl
import Testing

/// Each waiter is seen parked before it is woken or cancelled: a task that had not started yet
/// would take the quick path and test nothing of the waking.
@Suite struct ByteBudgetTests {
    /// Waits until `expected` waiters are parked; one that never parks fails the test after a
    /// minute instead of hanging it.
    func parked(_ count: @escaping () -> Int, _ expected: Int = 1, sourceLocation: SourceLocation = #_sourceLocation) async {
        let deadline = ContinuousClock.now + .seconds(60)
        while count() < expected {
            guard ContinuousClock.now < deadline else {
                Issue.record("\(count()) waiters parked after a minute; expected \(expected)", sourceLocation: sourceLocation)
                return
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test func aBatchReadIsCountedAtOnceAndTheNextReadWaitsForRoom() async throws {
        let budget = ByteBudget(capacity: 100)
        try await budget.waitForRoom()  // room: returns at once
        budget.take(250)  // a batch larger than the whole budget is counted, not refused
        #expect(budget.inUse == 250)
        let waiting = Task { try await budget.waitForRoom() }
        await parked { budget.waiting }
        budget.release(100)  // still over: the waiter stays
        #expect(budget.inUse == 150)
        #expect(budget.waiting == 1)
        budget.release(150)
        try await waiting.value  // room again
        #expect(budget.inUse == 0)
        #expect(budget.waiting == 0)
    }

    @Test func aCancelledWaiterThrowsAndAnAccountGivesBackWhatItHeld() async throws {
        let budget = ByteBudget(capacity: 100)
        let account = ByteBudget.Account(budget)
        account.take(70)
        account.take(60)  // a stream that broke with 130 bytes counted
        let waiting = Task { try await budget.waitForRoom() }
        await parked { budget.waiting }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(budget.waiting == 0)
        account.close()
        #expect(budget.inUse == 0)
        try await budget.waitForRoom()
    }

    @Test func creditsWakeAWaiterThrowOnFailureAndOnCancellation() async throws {
        let credits = Credits(1)
        try await credits.acquire()
        let waiting = Task { try await credits.acquire() }
        await parked { credits.waiting }
        credits.release()
        try await waiting.value
        let cancelled = Task { try await credits.acquire() }
        await parked { credits.waiting }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        struct Broken: Error {}
        let failing = Task { try await credits.acquire() }
        await parked { credits.waiting }
        credits.fail(Broken())
        await #expect(throws: Broken.self) { try await failing.value }
        #expect(credits.waiting == 0)
    }
}
