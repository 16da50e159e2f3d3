import BoxcarModel
import Testing

@Suite struct ByteBudgetTests {
    @Test func aHolderWaitsUntilEnoughIsGivenBackInOrder() async throws {
        let budget = ByteBudget(capacity: 100)
        try await budget.acquire(80)
        let order = Order()
        let big = Task { try await budget.acquire(60); await order.append("big") }
        try await Task.sleep(for: .milliseconds(20))
        let small = Task { try await budget.acquire(10); await order.append("small") }
        try await Task.sleep(for: .milliseconds(20))
        // 20 bytes are free, but the small request queued after the big one waits its turn.
        #expect(await order.items.isEmpty)
        budget.release(80)
        try await big.value
        try await small.value
        #expect(await order.items == ["big", "small"])
        #expect(budget.inUse == 70)
    }

    @Test func aRequestOverTheCapacityWaitsForAllOfIt() async throws {
        let budget = ByteBudget(capacity: 100)
        try await budget.acquire(1)
        let huge = Task { try await budget.acquire(1_000) }
        try await Task.sleep(for: .milliseconds(20))
        budget.release(1)
        try await huge.value
        #expect(budget.inUse == 100)
        budget.release(1_000)
        #expect(budget.inUse == 0)
    }

    @Test func aCancelledWaiterLeavesTheQueueAndAnAccountGivesBackWhatItHeld() async throws {
        let budget = ByteBudget(capacity: 100)
        let account = ByteBudget.Account(budget)
        try await account.acquire(70)
        let waiting = Task { try await budget.acquire(50) }
        try await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        account.close()  // a stream that broke with 70 bytes held
        #expect(budget.inUse == 0)
        try await budget.acquire(100)
    }

    actor Order {
        var items: [String] = []
        func append(_ item: String) { items.append(item) }
    }
}
