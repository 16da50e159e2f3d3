import BoxcarModel
import BoxcarStore
import Logging

/// Keeps the machine's own series within `--retention` (an age) and the database within
/// `--max-db-size` (bytes in use), by removing the oldest host points in small jobs queued with
/// ingest, so removal never stalls it. Experiments' data is never removed: a database over its
/// size with host series gone is logged once. With an upstream, removal by age waits for the
/// upstream to acknowledge what it removes; removal the size forces does not, and leaves a
/// skipped range for the forwarder to ship in place of what it removed. Removal by age also waits
/// for each remote-write receiver (`readers`, their cursors' names); removal the size forces does
/// not, and the remote writer logs what its receiver lost.
public final class Retention: Sendable {
    let store: Store
    let maxAge: Duration?
    let maxBytes: Int64?
    let forwarding: Bool
    let readers: [String]
    let logger: Logger
    /// Blocks removed per write job: small enough that ingest waits a few milliseconds at most.
    static let blocksPerJob = 2_000
    /// When over the size, the oldest host points are removed a tenth of the span they cover at a
    /// time, between a second and ten minutes: months of points go ten minutes a step, and a
    /// small limit that minutes of sampling fill loses its oldest tenth, not every point at once.
    static func sizeStep(_ span: ClosedRange<Int64>) -> Int64 {
        min(max((span.upperBound - span.lowerBound) / 10, 1_000_000_000), 10 * 60 * 1_000_000_000)
    }

    public init(store: Store, maxAge: Duration?, maxBytes: Int64?, forwarding: Bool = false, readers: [String] = [], logger: Logger) {
        self.store = store
        self.maxAge = maxAge
        self.maxBytes = maxBytes
        self.forwarding = forwarding
        self.readers = readers
        self.logger = logger
    }

    /// How often it looks: a tenth of the retention, between half a second and a minute; at least
    /// every 5 seconds under a size limit (measuring the size is a cheap read).
    var period: Duration {
        let byAge = maxAge.map { min(max($0 / 10, .milliseconds(500)), .seconds(60)) } ?? .seconds(60)
        return maxBytes == nil ? byAge : min(byAge, .seconds(5))
    }

    public func run() async throws {
        var warnedFull = false
        while !Task.isCancelled {
            do {
                if let maxAge {
                    let cutoff = WallClock.now() - Int64(maxAge.seconds * 1e9)
                    let removed = try await removeAll(
                        olderThan: cutoff, unforwarded: forwarding ? .keep : .remove, keepingUnreadBy: readers, keepingAttached: true)
                    if removed > 0 { logger.debug("retention removed old host points", metadata: ["blocks": "\(removed)"]) }
                }
                if let maxBytes {
                    warnedFull = try await shrink(to: maxBytes, warned: warnedFull)
                }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("retention could not remove old points; trying again later", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: period)
        }
    }

    /// Removes every host block older than `cutoff`, a job at a time; returns how many. By age,
    /// the machine's points inside an experiment's attachment windows are kept: the experiment's
    /// `system/…` series read them, and experiments are kept for ever.
    func removeAll(
        olderThan cutoff: Int64, unforwarded: Store.Unforwarded, keepingUnreadBy readers: [String] = [], keepingAttached: Bool = false
    ) async throws -> Int {
        var total = 0
        while true {
            let removed = try await store.removeHostBlocks(
                olderThan: cutoff, limit: Self.blocksPerJob, unforwarded: unforwarded, keepingUnreadBy: readers,
                keepingAttached: keepingAttached)
            total += removed
            if removed < Self.blocksPerJob { return total }
            await Task.yield()
        }
    }

    /// Removes the oldest host points, a step (`sizeStep`) at a time, until the database uses at
    /// most `maxBytes`; returns whether it is still over with nothing left to remove.
    func shrink(to maxBytes: Int64, warned: Bool) async throws -> Bool {
        while true {
            let used = try await store.size().usedBytes
            guard used > maxBytes else { return false }
            guard let span = try await store.hostWallclocks() else {
                if !warned {
                    logger.warning("the database is over --max-db-size with the machine's series all removed; experiments are kept", metadata: [
                        "max-db-size": "\(maxBytes)", "used": "\(used)",
                    ])
                }
                return true
            }
            let cutoff = span.lowerBound + Self.sizeStep(span)
            _ = try await removeAll(olderThan: cutoff, unforwarded: forwarding ? .skip : .remove)
        }
    }
}
