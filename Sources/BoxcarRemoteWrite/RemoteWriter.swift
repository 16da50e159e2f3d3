import AsyncHTTPClient
import BoxcarAPI
import BoxcarModel
import BoxcarStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

// BoxcarRemoteWrite: `--remote-write URL`, the machine's series pushed to Prometheus, Mimir,
// Thanos or VictoriaMetrics as Prometheus remote write 1.0 (protobuf, snappy-compressed), from
// the local store, in the order it committed them, from a cursor kept in the database: a
// restart or a receiver's outage loses nothing, and what was sent is not sent again.

/// Where one remote write goes, and what it carries.
public struct RemoteWriteTarget: Sendable {
    public var url: String
    /// Sent with every request (`--remote-write-header`, and `Authorization: Bearer …` from
    /// `--remote-write-token-file`).
    public var headers: [(name: String, value: String)]
    /// Labels of every series (`--label`; `host=<hostname>` by default).
    public var externalLabels: [String: String]
    /// Whether the trainers' process series (each tree's totals and its processes' GPU memory)
    /// go too (`--remote-write-processes`): data-loader workers make them churn. Their cgroups
    /// go whatever this says, like every machine family of the page.
    public var processes: Bool

    public init(url: String, headers: [(name: String, value: String)], externalLabels: [String: String], processes: Bool) {
        self.url = url
        self.headers = headers
        self.externalLabels = externalLabels
        self.processes = processes
    }
}

/// How one remote write stands, for the exporter's health families and `boxcar doctor`.
public struct RemoteWriteStatus: Sendable {
    public var url: String
    public var sentSamples: Int = 0
    /// Samples the receiver refused for good (a 4xx other than 429), logged.
    public var droppedSamples: Int = 0
    /// Requests that failed and were tried again (5xx, 429, no answer).
    public var failedRequests: Int = 0
    /// How long the oldest sample not yet accepted has waited (0 when none waits).
    public var lagSeconds: Double = 0
    public var lastError: String?
}

public final class RemoteWriter: Sendable {
    let store: Store
    let target: RemoteWriteTarget
    let client: HTTPClient
    let logger: Logger
    private let state: Mutex<RemoteWriteStatus>

    /// Blocks per request (a tick is one block a series), and about how many bytes of them: a
    /// backlog goes a few ticks a request, so each series' labels are sent once for several
    /// samples.
    static let maxRowsPerRequest = 10_000
    static let maxBytesPerRequest = 4 << 20
    /// How often the store is asked for what is new: well within the 2 s a sample may wait.
    static let pollPeriod: Duration = .milliseconds(250)
    static let maxBackoff: Duration = .seconds(30)

    public init(store: Store, target: RemoteWriteTarget, client: HTTPClient, logger: Logger) {
        self.store = store
        self.target = target
        self.client = client
        var logger = logger
        logger[metadataKey: "remote_write"] = "\(Self.redacted(target.url))"
        self.logger = logger
        state = Mutex(RemoteWriteStatus(url: Self.redacted(target.url)))
    }

    public func status() -> RemoteWriteStatus { state.withLock { $0 } }

    /// The name of this receiver's cursor in the database: its URL without a password, so that
    /// no secret is written there. Retention keeps what the cursor has not passed.
    public var cursorName: String { "remote_write:" + Self.redacted(target.url) }

    /// The URL without a password (`https://user:secret@host/…` → `https://user@host/…`): for
    /// logs and the page's labels.
    public static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        guard let at = authority.lastIndex(of: "@") else { return url }
        let user = authority[..<at].prefix { $0 != ":" }
        var out = String(url[..<scheme.upperBound])
        out += user
        out += authority[at...]
        out += rest.dropFirst(authority.count)
        return out
    }

    /// Sends until cancelled, or until a graceful shutdown finds it between requests: a request
    /// under way is let finish and its cursor kept, so that the next run does not send it again.
    /// A failure of the store (a full disk, say) is logged and tried again with backoff: remote
    /// write never stops for good while the agent runs.
    public func run() async throws {
        var backoff: Duration = .seconds(1)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await drain()
                return
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                logger.error("remote write failed to read the store; trying again", metadata: ["error": "\(error)"])
                state.withLock { $0.lastError = "\(error)" }
                let wait = backoff
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                backoff = min(backoff * 2, Self.maxBackoff)
            }
        }
    }

    /// Makes this receiver's cursor (a new one starts after what is committed now), or moves it
    /// from the name it had before the password was left out of it: before retention starts, so
    /// that it never finds no cursor where one is on its way.
    public func prepareCursor() async throws {
        _ = try await store.cursor(cursorName, formerly: "remote_write:" + target.url)
    }

    private func drain() async throws {
        var cursor = try await store.cursor(cursorName, formerly: "remote_write:" + target.url)
        logger.info("remote write starts", metadata: ["after_seq": "\(cursor)"])
        var reportedRemoval = cursor
        // Each stored series' labels as sent, made once (a tick brings each again).
        var seriesCache: [WriteRequestBuilder.SeriesID: [Prometheus_Label]?] = [:]
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let batch = try await store.outbox(
                after: cursor, maxRows: Self.maxRowsPerRequest, maxBytes: Self.maxBytesPerRequest,
                selection: .machineSeries(experiments: true))
            if batch.removedThrough > max(cursor, reportedRemoval) {
                // Retention (--retention, --max-db-size) removed points this receiver had not had.
                logger.error("retention removed machine points before remote write sent them; they are lost to this receiver", metadata: [
                    "after_seq": "\(cursor)", "through_seq": "\(batch.removedThrough)",
                ])
                reportedRemoval = batch.removedThrough
            }
            var builder = WriteRequestBuilder(externalLabels: target.externalLabels, processes: target.processes, series: seriesCache)
            var oldest: Int64?
            for (_, row) in batch.rows {
                guard case let .metricBlock(parentID, key, _, _, _, wallclockMin, _, data) = row else { continue }
                do {
                    if try builder.add(parentID: parentID, key: key, block: data) { oldest = min(oldest ?? wallclockMin, wallclockMin) }
                } catch {
                    logger.error("a stored block could not be read; its points are not sent", metadata: ["key": "\(key)", "error": "\(error)"])
                }
            }
            // Bounded: trainers' series (--remote-write-processes) come and go for months.
            seriesCache = builder.seriesCache.count > 100_000 ? [:] : builder.seriesCache
            if builder.samples > 0 {
                try await send(builder, oldest: oldest ?? 0)
            }
            // Behind while a backlog drains (a full request leaves more): by the newest sent.
            let full = batch.rows.count >= Self.maxRowsPerRequest
            let newest = batch.rows.last.flatMap { row -> Int64? in
                if case let .metricBlock(_, _, _, _, _, _, wallclockMax, _) = row.row { return wallclockMax }
                return nil
            }
            state.withLock { $0.lagSeconds = full && newest != nil ? max(0, Double(WallClock.now() - newest!) / 1e9) : 0 }
            if batch.through > cursor {
                cursor = batch.through
                try await store.setCursor(cursorName, to: cursor)
            }
            if batch.rows.count < Self.maxRowsPerRequest {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: Self.pollPeriod) }
            }
        }
    }

    /// Sends until the receiver takes it or refuses it for good; waits with backoff between.
    private func send(_ builder: WriteRequestBuilder, oldest: Int64) async throws {
        let body = Snappy.compress(try builder.request.serializedBytes())
        var backoff: Duration = .milliseconds(250)
        var warned = false
        while true {
            let outcome: Outcome
            do {
                outcome = try await post(body)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                outcome = .retry("\(error)")
            }
            switch outcome {
            case .accepted:
                state.withLock {
                    $0.sentSamples += builder.samples
                    $0.lastError = nil
                }
                return
            case .refused(let reason):
                // Nothing a retry would change (a sample too old, out of order, a bad label):
                // dropped, and said so.
                logger.error("the receiver refused \(builder.samples) samples; they are dropped", metadata: ["reason": "\(reason)"])
                state.withLock {
                    $0.droppedSamples += builder.samples
                    $0.lastError = reason
                }
                return
            case .retry(let reason):
                state.withLock { status in
                    status.failedRequests += 1
                    status.lastError = reason
                    status.lagSeconds = Double(WallClock.now() - oldest) / 1e9
                }
                if !warned { logger.warning("remote write failed; trying again with backoff", metadata: ["reason": "\(reason)"]) }
                warned = true
                let wait = backoff
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                backoff = min(backoff * 2, Self.maxBackoff)
            }
        }
    }

    enum Outcome {
        case accepted
        case refused(String)
        case retry(String)
    }

    private func post(_ body: [UInt8]) async throws -> Outcome {
        var request = HTTPClientRequest(url: target.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-protobuf")
        request.headers.add(name: "Content-Encoding", value: "snappy")
        request.headers.add(name: "X-Prometheus-Remote-Write-Version", value: "0.1.0")
        request.headers.add(name: "User-Agent", value: "boxcar")
        for header in target.headers { request.headers.replaceOrAdd(name: header.name, value: header.value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        // The status decides; the body only explains (a long one is cut, not an error).
        var explanation = ""
        do {
            for try await part in response.body {
                explanation += String(buffer: part)
                if explanation.utf8.count >= 500 { break }
            }
        } catch {}
        let text = "\(response.status.code) \(response.status.reasonPhrase): " + explanation.prefix(500)
        switch response.status.code {
        case 200..<300: return .accepted
        case 429, 500...: return .retry(text)
        default: return .refused(text)
        }
    }
}
