import GRPCCore
import Synchronization

/// What the services have answered since the agent started: calls by method and status, and
/// metric points accepted (committed) and refused by the status of their refusal. The exporter
/// publishes it (`boxcar_calls_total`, `boxcar_points_total`).
public final class CallStatistics: Sendable {
    public struct Counts: Sendable, Equatable {
        /// Calls by full method name ("modelbox.ModelStore/LogMetrics") and status code.
        public var calls: [String: [RPCError.Code?: Int]] = [:]
        /// Points by the status they were answered with (nil: accepted).
        public var points: [RPCError.Code?: Int] = [:]
        /// Points accepted by the parent they were logged to (a live view's points per second).
        /// An entry a parent that has logged since the agent started: a few per experiment.
        public var acceptedByParent: [String: Int] = [:]
    }

    private let counts = Mutex(Counts())

    public init() {}

    public var current: Counts { counts.withLock { $0 } }

    func call(_ method: String, _ code: RPCError.Code?) {
        counts.withLock { $0.calls[method, default: [:]][code, default: 0] += 1 }
    }

    func points(_ count: Int, _ code: RPCError.Code?) {
        guard count > 0 else { return }
        counts.withLock { $0.points[code, default: 0] += count }
    }

    /// Points committed, by the parent they were logged to.
    func accepted(_ byParent: [String: Int]) {
        counts.withLock { counts in
            for (parent, count) in byParent where count > 0 {
                counts.points[nil, default: 0] += count
                counts.acceptedByParent[parent, default: 0] += count
            }
        }
    }

    /// Points accepted for each of `parents` since the agent started.
    public func accepted(parents: [String]) -> [String: Int] {
        counts.withLock { counts in
            Dictionary(uniqueKeysWithValues: Set(parents).map { ($0, counts.acceptedByParent[$0] ?? 0) })
        }
    }

    /// The interceptor that counts every call's outcome: a unary call's when it returns, a
    /// streaming call's when its response stream ends.
    var interceptor: any ServerInterceptor { Counter(statistics: self) }

    private struct Counter: ServerInterceptor {
        let statistics: CallStatistics

        func intercept<Input: Sendable, Output: Sendable>(
            request: StreamingServerRequest<Input>,
            context: ServerContext,
            next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
        ) async throws -> StreamingServerResponse<Output> {
            let method = context.descriptor.fullyQualifiedMethod
            let statistics = self.statistics
            do {
                var response = try await next(request, context)
                switch response.accepted {
                case .success(var contents):
                    let producer = contents.producer
                    contents.producer = { writer in
                        do {
                            let trailers = try await producer(writer)
                            statistics.call(method, nil)
                            return trailers
                        } catch {
                            statistics.call(method, (error as? RPCError)?.code ?? .unknown)
                            throw error
                        }
                    }
                    response.accepted = .success(contents)
                case .failure(let error):
                    statistics.call(method, error.code)
                }
                return response
            } catch {
                statistics.call(method, (error as? RPCError)?.code ?? .unknown)
                throw error
            }
        }
    }
}
