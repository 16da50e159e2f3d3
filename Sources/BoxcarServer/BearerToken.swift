import BoxcarModel
import GRPCCore

/// Refuses every call that does not carry `authorization: Bearer <token>`: what guards the API
/// on a TCP port open beyond loopback (`--allow-remote`). The token is compared through SHA-256
/// digests of both sides, so the time taken tells nothing of how much of it matched nor of its
/// length; it is never logged.
struct BearerTokenInterceptor: ServerInterceptor {
    private let token: BearerToken

    init(token: String) {
        self.token = BearerToken(token)
    }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var accepted = false
        for value in request.metadata[stringValues: "authorization"] where token.matches(value) {
            accepted = true
        }
        guard accepted else {
            throw RPCError(code: .unauthenticated, message: "this listener needs the bearer token: send `authorization: Bearer <token>`")
        }
        return try await next(request, context)
    }
}
