@testable import BoxcarStore
import BoxcarModel
import BoxcarStorage
import BoxcarTestSupport
import Testing

/// A database's identity to an upstream: made once, kept across restarts on its machine, made
/// anew when the file is started on another machine (a copy), which must not reuse the id.
@Suite struct IdentityTests {
    let directory = TemporaryDirectory()
    var path: String { directory.file("boxcar.db") }

    @Test func isMadeOnceAndKeptAcrossRestarts() async throws {
        let first: AgentIdentity
        do {
            let store = try Store.open(path: path)
            let (made, replaced) = try await store.identity(machineID: "m1", hostName: "node1")
            #expect(replaced == nil)
            #expect(made.machineID == "m1" && made.hostName == "node1" && made.firstSequence == 0)
            first = made
            let (again, _) = try await store.identity(machineID: "m1", hostName: "node1")
            #expect(again == made)
            await store.close()
        }
        let store = try Store.open(path: path)
        let (reopened, replaced) = try await store.identity(machineID: "m1", hostName: "node1")
        await store.close()
        #expect(reopened == first)
        #expect(replaced == nil)
    }

    @Test func aCopyOnAnotherMachineTakesANewIDAfterTheRecordsItHeld() async throws {
        let store = try Store.open(path: path)
        let (original, _) = try await store.identity(machineID: "m1", hostName: "node1")
        _ = try await store.createExperiment(.init(name: "run", namespace: "r"))
        let held = store.lastSequence
        #expect(held > 0)

        // A renamed host with the same machine id is the same machine.
        let (renamed, notReplaced) = try await store.identity(machineID: "m1", hostName: "node1-renamed")
        #expect(renamed == original && notReplaced == nil)

        let (moved, replaced) = try await store.identity(machineID: "m2", hostName: "node1")
        #expect(replaced == original)
        #expect(moved.agentID != original.agentID)
        #expect(moved.machineID == "m2" && moved.hostName == "node1")
        #expect(moved.firstSequence == held)

        // Back on the first machine, the file is that machine's again, under a new id too: the
        // sequence numbers went on elsewhere in between.
        let (back, _) = try await store.identity(machineID: "m1", hostName: "node1")
        #expect(back.agentID != original.agentID && back.agentID != moved.agentID)
        await store.close()
    }

    @Test func withoutMachineIDsTheHostNameTellsMachinesApart() async throws {
        let store = try Store.open(path: path)
        let (first, _) = try await store.identity(machineID: "", hostName: "pod-a")
        let (same, _) = try await store.identity(machineID: "", hostName: "pod-a")
        let (other, replaced) = try await store.identity(machineID: "", hostName: "pod-b")
        await store.close()
        #expect(same == first)
        #expect(other.agentID != first.agentID && replaced == first)
    }

    @Test func idsAreVersion4UUIDs() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = randomUUID()
            let groups = id.split(separator: "-", omittingEmptySubsequences: false)
            #expect(groups.map(\.count) == [8, 4, 4, 4, 12])
            #expect(id.allSatisfy { "0123456789abcdef-".contains($0) })
            #expect(groups[2].first == "4")
            #expect("89ab".contains(groups[3].first!))
            seen.insert(id)
        }
        #expect(seen.count == 1000)
    }
}
