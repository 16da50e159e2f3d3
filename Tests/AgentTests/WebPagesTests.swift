import BoxcarCharts
import BoxcarModel
import Testing

@testable import BoxcarHTTP
@testable import boxcar

/// The agent's pages without a server: what a run's page charts by default, its form, the HTML's
/// escaping, and the login cookie.
@Suite struct WebPagesTests {
    static let gpu0 = #"system/hw.gpu.utilization{hw.id="GPU-0",index="0"}"#
    static let encoder = #"system/hw.gpu.utilization{hw.gpu.task="encoder",hw.id="GPU-0",index="0"}"#
    static let cpuUser = #"system/system.cpu.utilization{cpu.mode="user"}"#
    static let cpuIdle = #"system/system.cpu.utilization{cpu.mode="idle"}"#
    static let core3 = #"system/system.cpu.utilization{cpu.logical_number="3",cpu.mode="user"}"#
    static let mine = #"system/process.cpu.utilization{process.pid="41"}"#
    static let another = #"system/process.cpu.utilization{process.pid="42"}"#
    static let load = "system/system.cpu.load_average.1m"

    @Test func byDefaultTheTrainersMetricsAndTheMachinesChosenSeriesAreCharted() {
        let keys = ["accuracy", "loss", Self.gpu0, Self.encoder, Self.cpuUser, Self.cpuIdle, Self.core3, Self.mine, Self.another, Self.load]
        let (chosen, omitted) = RunPages.choose(keys: keys, patterns: [], pids: [41])
        // The kernels' share (not the encoder's), the machine's total in a busy mode, this run's
        // trainer only; the load average is not among the charts.
        #expect(chosen == ["accuracy", "loss", Self.gpu0, Self.cpuUser, Self.mine])
        #expect(omitted.isEmpty)
        // Patterns choose alone, the machine's series too.
        #expect(RunPages.choose(keys: keys, patterns: ["loss", "system/*load*"], pids: [41]).chosen == ["loss", Self.load])
    }

    @Test func aRunWithManyMetricsChartsTheFirstAndListsTheRest() {
        let keys = (0..<30).map { "metric\(100 + $0)" }
        let (chosen, omitted) = RunPages.choose(keys: keys, patterns: [], pids: [])
        #expect(chosen == Array(keys.prefix(RunPages.defaultTrainerKeys)))
        #expect(omitted == Array(keys.dropFirst(RunPages.defaultTrainerKeys)))
    }

    @Test func theFormsFieldsAreRead() {
        let form = RunForm(HTMLDocument.formFields("key=loss%2C+acc*&key=system%2Fhw.*&axis=step&since=+30m+&until="))
        #expect(form == RunForm(patterns: ["loss", "acc*", "system/hw.*"], axis: .step, since: "30m", until: nil))
        // An axis it does not know is the default, not an error.
        #expect(RunForm(HTMLDocument.formFields("axis=sideways")).axis == .time)
        #expect(HTMLDocument.formFields("a&b=1=2&c=%E2%9C%93")
            .map { "\($0.name)=\($0.value)" } == ["a=", "b=1=2", "c=✓"])
    }

    @Test func whatClientsSentIsEscapedAndIdsAreEncodedInLinks() {
        let experiment = Experiment(
            id: "a/b?c", name: "<script>alert(1)</script>", namespace: "n\"s", owner: "o'wner", framework: .pytorch,
            task: "", externalID: "", createdAt: 1_764_756_000_000_000_000, updatedAt: 0)
        let index = PageHTML.index(experiments: [experiment], live: ["a/b?c"])
        #expect(!index.body.contains("<script>"))
        #expect(index.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(index.body.contains(#"href="/experiments/a%2Fb%3Fc""#))
        #expect(index.body.contains("n&quot;s") && index.body.contains("o&#39;wner"))
        #expect(index.body.contains(#"<span class="live">live</span>"#) && index.refresh != nil)
        #expect(PageHTML.index(experiments: [experiment], live: []).refresh == nil)

        var content = PageHTML.RunContent(
            experiment: experiment, form: RunForm(patterns: ["\"><b>"]),
            events: [Event(parentID: "a/b?c", name: "<i>drop</i>", source: "", wallclock: 1_764_756_001_000_000_000, metadata: ["why": .string("<lr>")], createdAt: 0)],
            metadata: ["<k>": .string("<v>")], files: [], attachments: [], omittedKeys: [])
        content.problem = "No metric <matches>."
        let page = PageHTML.run(content)
        for raw in ["<b>", "<i>drop", "<lr>", "<k>", "<v>", "<matches>"] { #expect(!page.body.contains(raw), "\(raw)") }
        #expect(page.body.contains(#"value="&quot;&gt;&lt;b&gt;""#))
        #expect(page.body.contains("2025-12-03 10:00:01"))
        #expect(page.refresh == nil)
        content.live = true
        #expect(PageHTML.run(content).refresh == RunPages.refreshSeconds)
    }

    @Test func theCookieProvesTheTokenWithoutHoldingItAndExpires() {
        let session = WebSession(token: "s3cret")
        let now: Int64 = 1_796_292_000
        let value = session.value(issued: now)
        #expect(session.matches(cookies: [value], now: now))
        #expect(!value.contains("s3cret"))
        // Another token's, a forged time, a cookie past 30 days, one from the future, nonsense.
        #expect(!session.matches(cookies: [WebSession(token: "other").value(issued: now)], now: now))
        #expect(!session.matches(cookies: ["\(now + 1)" + value.drop { $0 != "." }], now: now))
        #expect(session.matches(cookies: [value], now: now + WebSession.maxAge))
        #expect(!session.matches(cookies: [value], now: now + WebSession.maxAge + 1))
        #expect(!session.matches(cookies: [session.value(issued: now + 3600)], now: now))
        #expect(!session.matches(cookies: ["", ".", "x.y", "\(now)", "\(Int64.min).x", "\(Int64.max).x"], now: now))
        // The same token, the same check: a restart keeps people signed in.
        #expect(WebSession(token: "s3cret").matches(cookies: [value], now: now))
        #expect(session.accepts(token: "s3cret") && !session.accepts(token: "s3cret "))
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"] {
            #expect(session.signIn(now: now).contains("; \(attribute)"))
        }
        // Another service of the same host may set a cookie of the same name: any of them counts.
        let headers = ["theme=dark; boxcar_session=1.abc", "boxcar_session= \(value) ; other=1"]
        #expect(WebSession.cookies(in: headers) == ["1.abc", value])
        #expect(session.matches(cookies: WebSession.cookies(in: headers), now: now))
    }

    @Test func withoutATokenPagesAnswerToLoopbackNamesOnly() {
        for name in ["localhost", "localhost:9464", "127.0.0.1:9464", "127.1.2.3", "[::1]:9464", "LOCALHOST", "app.localhost:80"] {
            #expect(Access.isLoopback(authority: name), "\(name)")
        }
        for name in ["evil.example", "evil.example:9464", "127.0.0.1.evil.example", "[::2]:1", "10.0.0.1", "127.0.0.256", "", "[::1"] {
            #expect(!Access.isLoopback(authority: name), "\(name)")
        }
    }

    @Test func pathSegmentsArePercentDecoded() {
        #expect(HTMLDocument.percentDecode("a%2Fb%3Fc+d") == "a/b?c+d")
        #expect(HTMLDocument.percentDecode(HTMLDocument.percentEncode("run/ü ?&")) == "run/ü ?&")
        // Not hex digits: left as they are.
        #expect(HTMLDocument.percentDecode("%+f%zz%4") == "%+f%zz%4")
    }

    @Test func afterSigningInOnlyThisServersPathsAreGoneTo() {
        #expect(WebSession.safeNext("/experiments/x?key=loss") == "/experiments/x?key=loss")
        for hostile in ["//evil.example/", "https://evil.example/", "/\\evil.example", "", "/a\r\nSet-Cookie: x", nil] {
            #expect(WebSession.safeNext(hostile) == "/")
        }
    }

    @Test func aDownloadsNameIsItsLastComponentWithoutQuotes() {
        #expect(HTTPServer.attachment("/data/run 1/weights \"v1\".bin")
            == #"attachment; filename="weights _v1_.bin"; filename*=UTF-8''weights%20%22v1%22.bin"#)
        #expect(HTTPServer.attachment("ckpt-é.pt").hasPrefix(#"attachment; filename="ckpt-_.pt""#))
    }
}
