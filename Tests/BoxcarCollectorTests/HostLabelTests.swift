@testable import BoxcarCollector
import Testing

/// A machine's series read from the collector carry their host among the labels, which stay
/// sorted by name and escaped as the agent writes them.
@Suite struct HostLabelTests {
    @Test(arguments: [
        ("system/memory.usage", "n1", #"system/memory.usage{host="n1"}"#),
        (#"system/cpu.time{cpu="0",state="user"}"#, "n1", #"system/cpu.time{cpu="0",host="n1",state="user"}"#),
        (#"system/disk.io{device="sda"}"#, "n1", #"system/disk.io{device="sda",host="n1"}"#),
        (#"system/fs.usage{mountpoint="/a,b=\"c\""}"#, "n1", #"system/fs.usage{host="n1",mountpoint="/a,b=\"c\""}"#),
        (#"system/x{a="\\",z="1"}"#, "n1", #"system/x{a="\\",host="n1",z="1"}"#),
        (#"system/process.count{process.pid="42"}"#, #"rack "7"\"#, #"system/process.count{host="rack \"7\"\\",process.pid="42"}"#),
        (#"system/x{host="kept"}"#, "n1", #"system/x{host="kept"}"#),
        // Names, not the text after them, decide the place: "host.x" and "host-x" come after "host".
        (#"system/x{host.x="1"}"#, "n1", #"system/x{host="n1",host.x="1"}"#),
        (#"system/x{a="1",host-x="2"}"#, "n1", #"system/x{a="1",host="n1",host-x="2"}"#),
        ("system/x{}", "n1", #"system/x{host="n1"}"#),
    ])
    func theHostIsALabelInItsPlace(key: String, host: String, expected: String) {
        #expect(PostgresStore.labelled(key, host: host) == expected)
    }
}
