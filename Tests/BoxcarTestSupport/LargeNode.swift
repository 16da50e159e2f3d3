import Foundation

/// Writes the /proc and /sys of a large training node (Scripts/fixtures/large-node.py: 192 CPUs,
/// 16 NVMe disks, 8 InfiniBand ports, a trainer tree of 400 processes under PID 4000) into
/// `directory`, afresh for each test that reads it.
public func writeLargeNode(to directory: String) throws {
    let generator = Process()
    generator.executableURL = URL(filePath: "/usr/bin/env")
    generator.arguments = ["python3", checkoutDirectory + "/Scripts/fixtures/large-node.py", directory]
    generator.standardOutput = FileHandle.nullDevice
    try generator.run()
    generator.waitUntilExit()
    guard generator.terminationStatus == 0 else {
        throw LargeNodeError(description: "Scripts/fixtures/large-node.py exited with \(generator.terminationStatus)")
    }
}

public struct LargeNodeError: Error, CustomStringConvertible {
    public let description: String
}
