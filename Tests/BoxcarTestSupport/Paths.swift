#if canImport(Glibc)
import Glibc
#endif

/// The root of this checkout.
public let checkoutDirectory: String = {
    // #filePath is …/Tests/BoxcarTestSupport/Paths.swift.
    var path = Substring(#filePath)
    for _ in 0..<3 { path = path[..<path.lastIndex(of: "/")!] }
    return String(path)
}()

/// `Tests/Fixtures` of this checkout: captured and hand-written /proc and /sys trees.
public let fixturesDirectory = checkoutDirectory + "/Tests/Fixtures"

/// The fake NVML library the package builds. swift test runs
/// .build/<triple>/debug/boxcarPackageTests.xctest (or the swift-testing runner beside it): the
/// library is in the same build directory, found upwards from the running binary.
public let fakeNVMLLibrary: String = {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    var directory = String(cString: Array(buffer[0..<max(count, 0)]) + [0])
    while let slash = directory.lastIndex(of: "/"), !directory.isEmpty {
        directory = String(directory[..<slash])
        if access(directory + "/libFakeNVML.so", F_OK) == 0 { return directory + "/libFakeNVML.so" }
    }
    return "libFakeNVML.so"
}()
