import BoxcarModel
import Testing

@Suite struct ByteBudgetTests {
    @Test func aBatchReadIsCountedAtOnceAndTheNextReadWaitsForRoom() async throws {
        let budget = ByteBudget(capacity: 100)
        try await budget.waitForRoom()  // room: returns at once
        budget.take(250)  // a batch larger than the whole budget is counted, not refused
        #expect(budget.inUse == 250)
        let waiting = Task { try await budget.waitForRoom() }
        budget.release(100)  // still over: the waiter stays
        #expect(budget.inUse == 150)
        budget.release(150)
        try await waiting.value  // room again
        #expect(budget.inUse == 0)
    }

    @Test func aCancelledWaiterThrowsAndAnAccountGivesBackWhatItHeld() async throws {
        let budget = ByteBudget(capacity: 100)
        let account = ByteBudget.Account(budget)
        account.take(70)
        account.take(60)  // a stream that broke with 130 bytes counted
        let waiting = Task { try await budget.waitForRoom() }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        account.close()
        #expect(budget.inUse == 0)
        try await budget.waitForRoom()
    }

    @Test func creditsWakeAWaiterThrowOnFailureAndOnCancellation() async throws {
        let credits = Credits(1)
        try await credits.acquire()
        let waiting = Task { try await credits.acquire() }
        credits.release()
        try await waiting.value
        let cancelled = Task { try await credits.acquire() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        struct Broken: Error {}
        let failing = Task { try await credits.acquire() }
        credits.fail(Broken())
        await #expect(throws: Broken.self) { try await failing.value }
    }
}
