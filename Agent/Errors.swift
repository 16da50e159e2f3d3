import BoxcarModel
import BoxcarStore
import GRPCCore

/// A failure the CLI reports as one line on stderr, exiting non-zero.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The message a person should read for `error`.
func describe(_ error: any Error) -> String {
    switch error {
    case let error as RPCError: return error.message
    case let error as ValidationError: return error.message
    case let error as NotFoundError: return error.message
    case let error as SQLiteError: return error.message
    case let error as CLIError: return error.description
    default: return "\(error)"
    }
}
