import BoxcarAPI
import BoxcarClient
import BoxcarModel
import Foundation
import GRPCCore
import Testing
import BoxcarTestSupport

/// Every RPC of `boxcar.v1.Agent` against a real agent.
@Suite struct AgentServiceEndToEndTests {
    let directory = TemporaryDirectory()

    static func batch(_ experimentID: String, steps: Range<Int>, keys: [String] = ["loss", "acc"]) -> Boxcar_V1_LogBatch {
        .with { batch in
            batch.series = keys.map { key in .with { $0.parentID = experimentID; $0.key = key } }
            for step in steps {
                for key in keys.indices {
                    batch.points.key.append(UInt32(key))
                    batch.points.step.append(UInt64(step))
                    batch.points.wallclockNs.append(1_764_000_000_000_000_000 + Int64(step))
                    batch.points.value.append(Double(step) + Double(key) / 10)
                }
            }
        }
    }

    @Test func logAcknowledgesEachBatchInOrderAfterCommit() async throws {
        try await withAgent(in: directory) { client in
            let id = try await client.modelStore.createExperiment(.with { $0.name = "s"; $0.namespace = "n" }).experimentID
            let acks = try await client.log(count: 50, window: 4) { index in
                var batch = Self.batch(id, steps: (index * 10)..<(index * 10 + 10))
                if index == 7 {
                    batch.stringPoints = [.with { $0.key = 0; $0.step = 70; $0.wallclockNs = 1; $0.value = "text" }]
                    batch.events = [.with { $0.parentID = id; $0.event = .with { $0.name = "checkpoint" } }]
                    batch.metadata = [.with { $0.parentID = id; $0.metadata = ["batch": JSONValue.number(7).protobuf] }]
                }
                return batch
            }
            #expect(acks.map(\.batchID) == (0..<50).map(UInt64.init))
            #expect(acks[0].points == 20)
            #expect(acks[7].points == 21)
            #expect(zip(acks, acks.dropFirst()).allSatisfy { $0.sequence < $1.sequence })

            // Acknowledged means committed: everything is readable at once.
            let metrics = try await client.metrics(parentID: id, keys: nil)
            #expect(metrics.map(\.key) == ["acc", "loss"])
            #expect(metrics[0].columns.count == 500)
            #expect(metrics[1].columns.count == 501)
            #expect(metrics[1].columns.steps == metrics[1].columns.steps.sorted())
            #expect(try await client.events(parentID: id).map(\.name) == ["checkpoint"])
            #expect(try await client.modelStore.listMetadata(.with { $0.parentID = id }).metadata["batch"] == JSONValue.number(7).protobuf)
        }
    }

    @Test func aRefusedBatchEndsTheStreamAndStoresNothingOfIt() async throws {
        try await withAgent(in: directory) { client in
            let id = try await client.modelStore.createExperiment(.with { $0.name = "s"; $0.namespace = "n" }).experimentID
            do {
                _ = try await client.log(count: 10, window: 1) { index in
                    var batch = Self.batch(id, steps: (index * 10)..<(index * 10 + 10))
                    if index == 3 {
                        batch.series.append(.with { $0.parentID = "missing"; $0.key = "x" })
                        batch.points.key.append(2)
                        batch.points.step.append(999)
                        batch.points.wallclockNs.append(0)
                        batch.points.value.append(0)
                    }
                    return batch
                }
                Issue.record("the stream should have been refused")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
                #expect(error.message.contains("batch 3"))
                #expect(Array(error.metadata[stringValues: "boxcar-reason"]) == ["not-found"])
            }
            let loss = try await client.metrics(parentID: id, keys: ["loss"])
            // Batches 0, 1 and 2 were acknowledged and kept; nothing of batch 3 or after.
            #expect(loss.first?.columns.steps == (0..<30).map(UInt64.init))
        }
    }

    @Test func malformedBatchesAreInvalidArguments() async throws {
        try await withAgent(in: directory) { client in
            let id = try await client.modelStore.createExperiment(.with { $0.name = "s"; $0.namespace = "n" }).experimentID
            let broken: [Boxcar_V1_LogBatch] = [
                { var b = Self.batch(id, steps: 0..<3); b.points.value.removeLast(); return b }(),
                { var b = Self.batch(id, steps: 0..<3); b.points.key[0] = 9; return b }(),
                { var b = Self.batch(id, steps: 0..<3); b.series[0].key = ""; return b }(),
            ]
            for batch in broken {
                await #expect(performing: { _ = try await client.log(count: 1) { _ in batch } }, throws: { error in
                    guard let error = error as? RPCError else { return false }
                    return error.code == .invalidArgument
                        && Array(error.metadata[stringValues: "boxcar-reason"]) == ["invalid-argument"]
                })
            }
            #expect(try await client.metrics(parentID: id, keys: nil).isEmpty)
        }
    }

    @Test func queryMetricsFiltersAndThins() async throws {
        try await withAgent(in: directory) { client in
            let id = try await client.modelStore.createExperiment(.with { $0.name = "q"; $0.namespace = "n" }).experimentID
            _ = try await client.log(count: 1) { _ in Self.batch(id, steps: 0..<101) }
            let all = try await client.agent.queryMetrics(.with { $0.parentID = id })
            #expect(all.series.map(\.key) == ["acc", "loss"])
            #expect(all.series[1].step.count == 101)
            let ranged = try await client.agent.queryMetrics(.with {
                $0.parentID = id; $0.keys = ["loss"]; $0.from = 10; $0.to = 20
            })
            #expect(ranged.series.map(\.key) == ["loss"])
            #expect(ranged.series[0].step == Array(10...20))
            let thinned = try await client.agent.queryMetrics(.with { $0.parentID = id; $0.keys = ["acc"]; $0.maxPoints = 5 })
            #expect(thinned.series[0].step == [0, 25, 50, 75, 100])
            #expect(thinned.series[0].value == [0.1, 25.1, 50.1, 75.1, 100.1])
            let byTime = try await client.agent.queryMetrics(.with {
                $0.parentID = id; $0.keys = ["loss"]; $0.axis = .wallclock
                $0.from = 1_764_000_000_000_000_095
            })
            #expect(byTime.series[0].step == Array(95...100))
            await #expect(performing: { try await client.agent.queryMetrics(.with { $0.parentID = "nope" }) }, throws: { error in
                (error as? RPCError)?.code == .notFound
            })
        }
    }

    @Test func attachDetachHealthAndListing() async throws {
        try await withAgent(in: directory) { client in
            let id = try await client.modelStore.createExperiment(.with { $0.name = "a"; $0.namespace = "n1" }).experimentID
            _ = try await client.modelStore.createExperiment(.with { $0.name = "b"; $0.namespace = "n2" })
            let attached = try await client.agent.attach(.with { $0.experimentID = id; $0.pid = 4242 })
            #expect(attached.attachedAt.seconds > 0)
            let detached = try await client.agent.detach(.with { $0.experimentID = id; $0.pid = 4242 })
            #expect(detached.detachedAt.nanoseconds >= attached.attachedAt.nanoseconds)
            await #expect(performing: { try await client.agent.detach(.with { $0.experimentID = id; $0.pid = 4242 }) }, throws: { error in
                (error as? RPCError)?.code == .notFound
            })
            await #expect(performing: { try await client.agent.attach(.with { $0.experimentID = "nope"; $0.pid = 1 }) }, throws: { error in
                (error as? RPCError)?.code == .notFound
            })
            await #expect(performing: { try await client.agent.attach(.with { $0.experimentID = id; $0.pid = -1 }) }, throws: { error in
                (error as? RPCError)?.code == .invalidArgument
            })

            let health = try await client.agent.health(.init())
            #expect(health.status == "serving")
            #expect(health.database == directory.file("data/boxcar.db"))
            #expect(health.lastSequence > 0)

            #expect(try await client.experiments(namespace: nil).map(\.name) == ["a", "b"])
            #expect(try await client.experiments(namespace: "n2").map(\.name) == ["b"])
        }
    }
}
