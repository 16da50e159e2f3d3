import BoxcarModel
import BoxcarStore
import Logging

/// Rewrites the head's ticks into a compressed block per series (Store+Compaction.swift), in the
/// background: a stretch of `ticksPerBlock` ticks of each parent once it has that many, and what a
/// parent has left once its sampling stopped (`idle` without a new tick: a trainer detached).
/// Each stretch is encoded off the writer and committed in one small job queued with ingest.
public final class Compaction: Sendable {
    let store: Store
    let ticksPerBlock: Int
    let idle: Duration
    let period: Duration
    let readers: Store.OutboxReaders
    let logger: Logger

    /// Ticks per compacted block. A block's own cost (its row, two index entries, its header:
    /// about 60 bytes) is 0.1 byte a point at 600 points; the head it leaves holds up to twice
    /// that many ticks (up to 8 bytes a value). Ten minutes at the default second.
    public static let defaultTicksPerBlock = 600

    public init(
        store: Store, sampleInterval: Duration, ticksPerBlock: Int = defaultTicksPerBlock,
        readers: Store.OutboxReaders, logger: Logger
    ) {
        self.store = store
        self.ticksPerBlock = ticksPerBlock
        // Looks a few times per stretch, at most once a minute, at least once a second.
        self.period = min(max(sampleInterval * ticksPerBlock / 4, .seconds(1)), .seconds(60))
        self.idle = max(sampleInterval * ticksPerBlock, .seconds(60))
        self.readers = readers
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled {
            do {
                try await compactAll()
            } catch is CancellationError {
                return
            } catch {
                logger.warning("the head could not be compacted; trying again later", metadata: ["error": "\(error)"])
            }
            try await Task.sleep(for: period)
        }
    }

    /// Compacts until no stretch is due; returns what it compacted.
    @discardableResult
    public func compactAll() async throws -> Store.Compacted {
        var total = Store.Compacted()
        while true {
            let idleBefore = WallClock.now() - Int64(idle.seconds * 1e9)
            let done = try await store.compactHead(ticksPerBlock: ticksPerBlock, idleBefore: idleBefore, readers: readers)
            guard done.ticks > 0 || done.merged > 0 else { return total }
            total.ticks += done.ticks
            total.merged += done.merged
            total.blocks += done.blocks
            total.points += done.points
            logger.debug("compacted", metadata: ["ticks": "\(done.ticks)", "merged": "\(done.merged)", "blocks": "\(done.blocks)"])
            await Task.yield()
        }
    }
}
