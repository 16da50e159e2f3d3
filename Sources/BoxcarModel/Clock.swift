#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum WallClock {
    /// The current time in nanoseconds since the Unix epoch.
    public static func now() -> Nanoseconds {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}

/// A stored wallclock as nanoseconds since the epoch. The agent and the SDK write nanoseconds; a
/// ModelBox client's `wallclock_time` is kept as it sent it, often seconds or milliseconds: told
/// apart by size (nanoseconds of any time since 1973 are past 10^17, microseconds past 10^14,
/// milliseconds past 10^11). Saturates instead of overflowing.
public func wallclockNanoseconds(_ wallclock: Int64) -> Nanoseconds {
    func times(_ factor: Int64) -> Int64 {
        let (product, overflow) = wallclock.multipliedReportingOverflow(by: factor)
        return overflow ? (wallclock < 0 ? .min : .max) : product
    }
    switch wallclock {
    case 100_000_000_000_000_000...: return wallclock
    case 100_000_000_000_000...: return times(1000)
    case 100_000_000_000...: return times(1_000_000)
    default: return times(1_000_000_000)
    }
}

extension Duration {
    /// The duration in seconds, as rates divide by it.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
