#if canImport(Glibc)
import Glibc
#endif
import BoxcarStorage
import BoxcarTestSupport
import Testing

/// What the artifacts sweep removes: at start every partial upload and unreferenced blob; while the
/// agent serves, only those untouched since the cutoff, so that an upload in flight and a blob
/// whose record is on its way are kept.
@Suite struct ArtifactSweepTests {
    let directory = TemporaryDirectory()

    @Test func aServingSweepRemovesOnlyWhatIsOlderThanTheCutoff() throws {
        let artifacts = try ArtifactStore(root: directory.file("artifacts"))
        let referenced = String(repeating: "a", count: 64)
        let oldOrphan = String(repeating: "b", count: 64)
        let newOrphan = String(repeating: "c", count: 64)
        let now = Int(time(nil))
        for (name, age) in [(referenced, 7200), (oldOrphan, 7200), (newOrphan, 10)] {
            try write(artifacts.blobPath(name), modified: now - age)
        }
        try write(artifacts.root + "/incoming/stalled", modified: now - 7200)
        try write(artifacts.root + "/incoming/writing", modified: now - 10)

        let serving = artifacts.removeLeftovers(keeping: [referenced], modifiedBefore: now - 3600)
        #expect(serving.orphans == 1 && serving.partialUploads == 1)
        #expect(!exists(artifacts.blobPath(oldOrphan)) && !exists(artifacts.root + "/incoming/stalled"))
        #expect(exists(artifacts.blobPath(referenced)) && exists(artifacts.blobPath(newOrphan)))
        #expect(exists(artifacts.root + "/incoming/writing"))

        // At start, nothing can be in flight: whatever no record names goes, however new.
        let starting = artifacts.removeLeftovers(keeping: [referenced])
        #expect(starting.orphans == 1 && starting.partialUploads == 1)
        #expect(exists(artifacts.blobPath(referenced)) && !exists(artifacts.blobPath(newOrphan)))
    }

    private func write(_ path: String, modified: Int) throws {
        let folder = String(path[..<path.lastIndex(of: "/")!])
        mkdir(folder, 0o700)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(fd >= 0)
        _ = Glibc.write(fd, "x", 1)
        close(fd)
        var times = [timespec(tv_sec: modified, tv_nsec: 0), timespec(tv_sec: modified, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
    }

    private func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }
}
