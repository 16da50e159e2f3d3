@testable import BoxcarStore
import BoxcarModel
import BoxcarTestSupport
import Foundation
import Testing

/// Databases written before the machine series took OpenTelemetry's names (schema 7 and older)
/// keep their points under the new names: migration 8 renames the keys, and a read-only look at
/// an older agent's file sees them renamed without changing it.
@Suite struct SeriesRenameTests {
    let directory = TemporaryDirectory()

    func fixtureDatabase(_ name: String, as copy: String) throws -> String {
        let path = directory.file(copy)
        try FileManager.default.copyItem(atPath: fixturesDirectory + "/databases/" + name, toPath: path)
        return path
    }

    /// schema-6-head.db: a release agent of schema 6 sampling this machine 41 times (75 series,
    /// 2,844 points), under the names before.
    @Test func anOlderAgentsSeriesAreReadUnderTheirNewNamesWithAllTheirPoints() async throws {
        for readOnly in [false, true] {
            let path = try fixtureDatabase("schema-6-head.db", as: "head6-\(readOnly).db")
            let store = try readOnly ? Store.openReadOnly(path: path) : Store.open(path: path)
            let host = try await store.metrics(parentID: Store.hostID)
            let keys = Set(host.map(\.key))
            #expect(host.count == 75)
            #expect(host.reduce(0) { $0 + $1.columns.count } == 2844)
            for key in [
                #"system/system.cpu.utilization{cpu.logical_number="0",cpu.mode="interrupt"}"#,
                #"system/system.disk.io.rate{disk.io.direction="read",system.device="vda"}"#,
                #"system/system.network.packet.count.rate{network.interface.name="eth0",network.io.direction="receive"}"#,
                #"system/system.memory.usage{system.memory.state="used"}"#,
                "system/system.memory.linux.available", "system/system.cpu.context_switches.rate", "system/system.memory.limit",
            ] {
                #expect(keys.contains(key), "\(key) (readOnly: \(readOnly))")
            }
            // No key is left under a name or label before.
            let old = keys.filter { key in
                SeriesRenames.current(key) != nil || ["device", "state", "direction", "cpu"].contains { key.contains("{\($0)=") || key.contains(",\($0)=") }
            }
            #expect(old.isEmpty, "\(old.sorted())")
            await store.close()
        }
        // The read-only look left the file as it was.
        let untouched = try Store.openReadOnly(path: directory.file("head6-true.db"))
        let version = try await untouched.read { connection in try Migrations.userVersion(connection) }
        #expect(version == 6)
        await untouched.close()
    }

    /// A rate and its counter under the names before (`system.disk.io` the rate, `….cumulative`
    /// the counter): the counter takes the name the rate had, the rate `.rate`, each with its own
    /// points; an experiment's own metric of the same shape keeps its name.
    @Test func aRateAndItsCounterSwapNamesWithTheirPoints() async throws {
        let path = directory.file("boxcar.db")
        let rate = #"system/system.disk.io{device="vda",direction="read"}"#
        let counter = #"system/system.disk.io.cumulative{device="vda",direction="read"}"#
        // Without labels, the name alone swaps.
        let switches = "system/system.cpu.context_switches"
        let switchesCounter = "system/system.cpu.context_switches.cumulative"
        do {
            let store = try Store.open(path: path)
            for n in 1...3 {
                try await store.appendTick(Store.Tick(
                    parentID: Store.hostID, step: UInt64(n), wallclock: Int64(n) * 1_000_000_000,
                    keys: [rate, counter, switches, switchesCounter], values: [Double(n), Double(1000 * n), 5, Double(10 * n)]))
            }
            await store.close()
        }
        // As a schema-7 agent left it.
        let connection = try Connection(path: path, readOnly: false)
        try connection.execute("PRAGMA user_version = 7")
        let store = try Store.open(path: path)
        let host = Dictionary(uniqueKeysWithValues: try await store.metrics(parentID: Store.hostID).map { ($0.key, $0.columns.values) })
        #expect(host == [
            #"system/system.disk.io.rate{disk.io.direction="read",system.device="vda"}"#: [1, 2, 3],
            #"system/system.disk.io{disk.io.direction="read",system.device="vda"}"#: [1000, 2000, 3000],
            "system/system.cpu.context_switches.rate": [5, 5, 5],
            "system/system.cpu.context_switches": [10, 20, 30],
        ])
        await store.close()
    }

    @Test func renamesAreOnlyOfOldMachineSeries() {
        #expect(SeriesRenames.current(#"system/system.cpu.utilization{cpu="3",state="irq"}"#)
            == #"system/system.cpu.utilization{cpu.logical_number="3",cpu.mode="interrupt"}"#)
        #expect(SeriesRenames.current(#"system/system.network.tcp.established"#)
            == #"system/system.network.connection.count{network.connection.state="established",network.transport="tcp"}"#)
        #expect(SeriesRenames.current(#"system/hw.power{index="0",name="H100",uuid="GPU-1"}"#)
            == #"system/hw.power{hw.id="GPU-1",hw.model="H100",hw.type="gpu",index="0"}"#)
        #expect(SeriesRenames.current(#"system/system.memory.usage{state="available"}"#) == "system/system.memory.linux.available")
        #expect(SeriesRenames.current(#"system/hw.temperature{index="1",vendor="amd"}"#)
            == #"system/hw.temperature{hw.sensor_location="edge",hw.vendor="amd",index="1"}"#)
        #expect(SeriesRenames.current(#"system/hw.temperature{index="1",name="H100",uuid="GPU-1"}"#)
            == #"system/hw.temperature{hw.id="GPU-1",hw.model="H100",index="1"}"#)
        // Quotes and backslashes in values survive.
        #expect(SeriesRenames.current(#"system/system.filesystem.limit{device="/dev/x",mountpoint="/a \"b\" \\c",type="ext4"}"#)
            == #"system/system.filesystem.limit{system.device="/dev/x",system.filesystem.mountpoint="/a \"b\" \\c",system.filesystem.type="ext4"}"#)
        // Not machine series, or already renamed.
        #expect(SeriesRenames.current("loss") == nil)
        #expect(SeriesRenames.current("system.disk.io") == nil)
        #expect(SeriesRenames.current(#"system/system.cpu.time{cpu.logical_number="0",cpu.mode="idle"}"#) == nil)
        #expect(SeriesRenames.current(#"system/system.disk.io{disk.io.direction="read",system.device="vda"}"#) == nil)
    }
}
