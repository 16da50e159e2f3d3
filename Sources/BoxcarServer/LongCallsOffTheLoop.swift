import BoxcarAPI
import GRPCCore

/// Runs every call but the short unary ones on Swift concurrency's pool.
///
/// The agent serves its calls on its listeners' event loop, which saves a small unary call two
/// thread wake-ups (`EventLoopExecutor`). A call that takes long there would hold every other
/// connection's calls and bytes: a series read that builds a 95 MB answer, a Log stream decoding
/// its batches, an upload's file I/O. Those leave the loop for the pool, the answer they write
/// too; new methods leave it unless they are named here.
struct LongCallsOffTheLoop: ServerInterceptor {
    /// The unary calls whose request and answer are small: writes of a record, reads of one.
    /// Descriptors, not their names: a call's name would be a string built for every call.
    static let onTheLoop: Set<MethodDescriptor> = [
        Modelbox_ModelStore.Method.LogMetrics.descriptor, Modelbox_ModelStore.Method.LogEvent.descriptor,
        Modelbox_ModelStore.Method.UpdateMetadata.descriptor, Modelbox_ModelStore.Method.CreateExperiment.descriptor,
        Modelbox_ModelStore.Method.CreateModel.descriptor, Modelbox_ModelStore.Method.CreateModelVersion.descriptor,
        Modelbox_ModelStore.Method.CreateCheckpoint.descriptor, Modelbox_ModelStore.Method.TrackArtifacts.descriptor,
        Modelbox_ModelStore.Method.GetExperiment.descriptor, Modelbox_ModelStore.Method.GetCheckpoint.descriptor,
        Modelbox_ModelStore.Method.GetClusterMembers.descriptor,
        Boxcar_V1_Agent.Method.Attach.descriptor, Boxcar_V1_Agent.Method.Detach.descriptor,
        Boxcar_V1_Agent.Method.Health.descriptor,
    ]

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard !Self.onTheLoop.contains(context.descriptor) else {
            return try await next(request, context)
        }
        return try await withTaskExecutorPreference(globalConcurrentExecutor) {
            var response = try await next(request, context)
            // The answer is written after this returns, by its producer.
            if case .success(var contents) = response.accepted {
                let producer = contents.producer
                contents.producer = { writer in
                    try await withTaskExecutorPreference(globalConcurrentExecutor) { try await producer(writer) }
                }
                response.accepted = .success(contents)
            }
            return response
        }
    }
}
