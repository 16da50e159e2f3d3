#if canImport(Glibc)
import Glibc
#endif
import BoxcarModel
import BoxcarStorage
import CSQLite
import Logging
import Synchronization

/// The one connection that writes, on a thread of its own, fed by a bounded queue.
///
/// Group commit: the thread takes every job waiting (up to `maxGroup`), runs each inside its own
/// savepoint within one transaction, commits once, and only then completes the jobs. A job that
/// throws is rolled back to its savepoint alone, so a refused request stores nothing while the
/// others in its group still commit. SQLite calls block, so they stay off the Swift concurrency
/// pool.
///
/// A caller that would only wait for its write, alone, may commit it itself (`write(_:here:)`):
/// when the thread has nothing to do, the write becomes a group of one on the caller's thread,
/// which saves waking the thread and being woken by it again (most of what a lone unary call's
/// write costs the agent). Groups still commit one at a time. A checkpoint that such a commit
/// makes due is left to the thread: it copies the WAL into the database and fsyncs both, which a
/// caller (the API's event loop) must not wait for.
final class Writer: @unchecked Sendable {
    private struct Job {
        let run: (WriteContext) throws -> Void
        let finish: (Error?) -> Void
    }

    private let context: WriteContext
    private let capacity: Int
    private let maxGroup: Int
    private let logger: Logger

    // Guarded by `mutex`.
    // Heap-allocated: pthread objects must not move, and Swift gives no stable address to a
    // stored property passed with &.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [Job] = []
    private var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    /// Whether a group is being committed, by the thread or by a caller.
    private var committing = false
    /// A caller's commit took the WAL to `checkpointPages`: the thread checkpoints once it is idle.
    private var checkpointDue = false
    /// Touched only by whoever commits (`committing`): whether that is a caller, and whether its
    /// commit made a checkpoint due.
    private var committingForCaller = false
    private var walFull = false
    /// WAL pages past which a commit is followed by a checkpoint (SQLite's own auto-checkpoint's).
    static let checkpointPages: Int32 = 1000
    /// Checkpoints the thread ran for callers' commits (for the tests).
    private var checkpointsForCallers = 0
    var callersCheckpoints: Int {
        lock()
        defer { unlock() }
        return checkpointsForCallers
    }
    private var committedSequence: Int64 = 0
    /// How long each group's transaction took, begin to commit.
    private var commitTimes = Histogram()
    /// What the disk or the database said when the last group failed for its sake (full, an I/O
    /// error, read-only), until a later group commits: what /readyz reports.
    private var storageFault: String?
    /// The writer thread's CPU time so far, read after each group (waking up included).
    private var threadCPU: Duration = .zero

    init(connection: Connection, capacity: Int, maxGroup: Int = 1024, logger: Logger) throws {
        self.context = try WriteContext(connection: connection)
        self.capacity = capacity
        self.maxGroup = maxGroup
        self.logger = logger
        self.committedSequence = context.sequence
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        // In place of SQLite's auto-checkpoint (the same PASSIVE checkpoint at the same size), so
        // that a caller's commit does not run it. The connection lives as long as this writer.
        sqlite3_wal_hook(connection.handle, { writer, database, name, pages in
            Unmanaged<Writer>.fromOpaque(writer!).takeUnretainedValue().committed(database, name, pages: pages)
        }, Unmanaged.passUnretained(self).toOpaque())
        let thread = Thread { [self] in self.loop() }
        thread.start()
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    /// Runs `body` in the writer's transaction and returns once that transaction committed. With
    /// `here`, on the calling thread when no group is queued or committing (else queued as any
    /// other): for a caller whose thread may block for a commit, and a checkpoint now and then.
    func write<R: Sendable>(_ body: @escaping @Sendable (WriteContext) throws -> R, here: Bool = false) async throws -> R {
        if here, let result = try commitHere(body) { return result }
        return try await submit(body).value()
    }

    /// `body` committed as a group of one on this thread; nil when the writer is busy.
    private func commitHere<R>(_ body: @escaping (WriteContext) throws -> R) throws -> R? {
        lock()
        if closed {
            unlock()
            throw StoreClosedError()
        }
        guard queue.isEmpty && !committing else {
            unlock()
            return nil
        }
        committing = true
        unlock()
        var result: R?
        let outcome = commitGroup([Job(run: { result = try body($0) }, finish: { _ in })], byCaller: true)[0]
        if let outcome { throw outcome }
        return result!
    }

    /// Queues `body` (waiting only while the queue is full) and returns at once with the promise
    /// of its committed result. Jobs run in the order they were submitted.
    func submit<R: Sendable>(
        _ body: @escaping @Sendable (WriteContext) throws -> R,
        onFailure: (@Sendable () -> Void)? = nil
    ) async throws -> Pending<R> {
        try await waitForSpace()
        let pending = Pending<R>()
        let box = ResultBox<R>()
        let job = Job(
            run: { context in
                do {
                    box.value = try body(context)
                } catch {
                    // Before the next job of the group runs.
                    onFailure?()
                    throw error
                }
            },
            finish: { error in
                if let error {
                    // A failed commit: on the writer thread, before it runs its next group (a
                    // caller's lone write may commit meanwhile: it is in no chain).
                    onFailure?()
                    pending.complete(.failure(error))
                } else {
                    pending.complete(.success(box.value!))
                }
            })
        lock()
        if closed {
            unlock()
            throw StoreClosedError()
        }
        queue.append(job)
        pthread_cond_signal(condition)
        unlock()
        return pending
    }

    var pending: Int {
        lock()
        defer { unlock() }
        return queue.count
    }

    /// Whether `close` was called: no write is taken any more.
    var isClosed: Bool {
        lock()
        defer { unlock() }
        return closed
    }

    var commitLatency: Histogram {
        lock()
        defer { unlock() }
        return commitTimes
    }

    var fault: String? {
        lock()
        defer { unlock() }
        return storageFault
    }

    /// The CPU time the writer thread has used, as of its last group's commit.
    var cpuTime: Duration {
        lock()
        defer { unlock() }
        return threadCPU
    }

    var lastSequence: Int64 {
        lock()
        defer { unlock() }
        return committedSequence
    }

    /// Refuses new jobs, lets the thread commit every job already queued, and returns when it has.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock()
            closed = true
            let waiters = spaceWaiters
            spaceWaiters.removeAll()
            if finished {
                unlock()
                continuation.resume()
            } else {
                finishWaiters.append(continuation)
                pthread_cond_signal(condition)
                unlock()
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    private func waitForSpace() async throws {
        while true {
            lock()
            if closed {
                unlock()
                throw StoreClosedError()
            }
            if queue.count < capacity {
                unlock()
                return
            }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                spaceWaiters.append(continuation)
                unlock()
            }
        }
    }

    private func loop() {
        while true {
            lock()
            while (queue.isEmpty && !closed && !checkpointDue) || committing {
                pthread_cond_wait(condition, mutex)
            }
            if queue.isEmpty && !closed {
                // Only a checkpoint a caller's commit made due.
                checkpointDue = false
                committing = true
                unlock()
                _ = sqlite3_wal_checkpoint(context.connection.handle, nil)
                lock()
                committing = false
                checkpointsForCallers += 1
                unlock()
                continue
            }
            if queue.isEmpty && closed {
                finished = true
                let waiters = finishWaiters
                finishWaiters.removeAll()
                unlock()
                for waiter in waiters { waiter.resume() }
                return
            }
            let group = Array(queue.prefix(maxGroup))
            queue.removeFirst(group.count)
            committing = true
            // Its commit checkpoints, if the WAL is still as large.
            checkpointDue = false
            let waiters = spaceWaiters
            spaceWaiters.removeAll()
            unlock()
            for waiter in waiters { waiter.resume() }

            let outcomes = commitGroup(group, byCaller: false)
            var cpu = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu)
            lock()
            threadCPU = .seconds(cpu.tv_sec) + .nanoseconds(cpu.tv_nsec)
            unlock()
            for (job, error) in zip(group, outcomes) { job.finish(error) }
        }
    }

    /// Commits `group` (marked `committing` by the caller), records how it went, and lets the
    /// next group go: on the writer thread, or a caller's lone write.
    private func commitGroup(_ group: [Job], byCaller: Bool) -> [Error?] {
        committingForCaller = byCaller
        let started = ContinuousClock.now
        let outcomes = commit(group)
        let madeDue = walFull
        walFull = false
        let took = (ContinuousClock.now - started).seconds
        // A job's own refusal (an unknown parent, say) is not the store's fault.
        let fault = outcomes.lazy.compactMap { $0 as? SQLiteError }.first { $0.isStorageFault }
        let committed = outcomes.contains { $0 == nil }
        lock()
        commitTimes.observe(took)
        if let fault {
            storageFault = fault.description
        } else if committed {
            storageFault = nil
        }
        if madeDue { checkpointDue = true }
        committing = false
        // The thread waits while a caller commits: jobs may have come meanwhile, `close`, or a
        // checkpoint fallen due. (Not woken for nothing: that would cost a lone write what
        // committing it here saves.)
        if !queue.isEmpty || closed || checkpointDue { pthread_cond_signal(condition) }
        unlock()
        return outcomes
    }

    /// SQLite's WAL hook, after each commit: past `checkpointPages`, the thread checkpoints now, a
    /// caller leaves it to the thread.
    private func committed(_ database: OpaquePointer?, _ name: UnsafePointer<CChar>?, pages: Int32) -> Int32 {
        guard pages >= Self.checkpointPages else { return SQLITE_OK }
        if committingForCaller {
            walFull = true
        } else {
            // What SQLite's own hook does; a checkpoint that cannot finish (a reader holds the
            // WAL) is tried again at the next commit.
            _ = sqlite3_wal_checkpoint(database, name)
        }
        return SQLITE_OK
    }

    /// One transaction for the whole group; returns each job's error, or nil for those committed.
    ///
    /// Some errors (a full disk, an I/O error) make SQLite roll back the whole transaction, not
    /// just the failing statement. Then the jobs already run in it are lost too: they are failed
    /// with that error, every cached id is forgotten, and the rest of the group runs in a new
    /// transaction, so nothing runs outside one.
    private func commit(_ group: [Job]) -> [Error?] {
        var outcomes: [Error?] = Array(repeating: nil, count: group.count)
        var pendingInTransaction: [Int] = []
        var index = 0
        var inTransaction = false
        while index < group.count {
            if !inTransaction {
                do {
                    try context.begin()
                    inTransaction = true
                } catch {
                    for rest in index..<group.count { outcomes[rest] = error }
                    return outcomes
                }
            }
            do {
                try context.savepoint()
                try group[index].run(context)
                try context.release()
                pendingInTransaction.append(index)
            } catch {
                outcomes[index] = error
                if context.transactionIsOpen {
                    context.rollbackToSavepoint()
                } else {
                    logger.error(
                        "SQLite rolled back the transaction; \(pendingInTransaction.count) writes in it refused",
                        metadata: ["error": "\(error)"])
                    for lost in pendingInTransaction { outcomes[lost] = error }
                    pendingInTransaction.removeAll()
                    context.rollbackTransaction()
                    inTransaction = false
                }
            }
            index += 1
        }
        guard inTransaction else { return outcomes }
        do {
            try context.commit()
            lock()
            committedSequence = context.sequence
            unlock()
        } catch {
            logger.error("commit failed; \(pendingInTransaction.count) writes refused", metadata: ["error": "\(error)"])
            context.rollbackTransaction()
            for lost in pendingInTransaction { outcomes[lost] = error }
        }
        return outcomes
    }

    private func lock() { pthread_mutex_lock(mutex) }
    private func unlock() { pthread_mutex_unlock(mutex) }
}

private final class ResultBox<R>: @unchecked Sendable {
    var value: R?
}

/// A plain POSIX thread: the writer must not occupy a thread of the Swift concurrency pool.
private final class Thread {
    private let body: () -> Void

    init(_ body: @escaping () -> Void) { self.body = body }

    func start() {
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { argument in
            let this = Unmanaged<Thread>.fromOpaque(argument!).takeRetainedValue()
            // Named for `top -H` and `perf report --comm`: the one thread whose CPU a write costs.
            // (pthread_setname_np is not in Swift's Glibc module; this is what it does.)
            let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
            if comm >= 0 {
                _ = write(comm, "boxcar-writer", 13)
                close(comm)
            }
            this.body()
            return nil
        }, unmanaged.toOpaque())
        precondition(rc == 0, "cannot start the writer thread: \(rc)")
        pthread_detach(thread)
    }
}
