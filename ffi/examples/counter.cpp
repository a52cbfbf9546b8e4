// counter: a replicated counter on osiris.hpp (the C++ RAII wrapper).
//
//   counter NODE_ID (bootstrap | SEED_ADDR) MEMBERS ADDS
//
// Prints "READY <addr>", joins "counter" (a joiner loads the total by state
// transfer), waits for MEMBERS members, adds its node id ADDS times by
// OrderedSend, waits until the total is what every member added, prints
// "TOTAL <n> ops=<k> trace=<hash>" (the same line at every member: one total
// order), then asks every member for its total by a query ("QUERY
// replies=<r> agree=<yes|no>"). A barrier of OrderedSends ends the run.
#include <osiris.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <string>

namespace {

struct Counter {
    std::mutex lock;
    std::condition_variable changed;
    uint64_t total = 0;
    uint64_t ops = 0;
    uint64_t trace = 0xcbf29ce484222325u; // FNV-1a over the delivery order
    size_t members = 0;
    size_t done = 0;

    template <typename Ready> void await(Ready ready, const char *what) {
        std::unique_lock<std::mutex> guard(lock);
        if (!changed.wait_for(guard, std::chrono::seconds(30), ready)) {
            std::cout << "TIMEOUT " << what << std::endl;
            std::exit(1);
        }
    }
};

} // namespace

int main(int argc, char **argv) {
    if (argc != 5) {
        std::cerr << "usage: counter NODE_ID (bootstrap|SEED_ADDR) MEMBERS ADDS\n";
        return 2;
    }
    const std::string id = argv[1], seed = argv[2];
    const size_t members = std::stoul(argv[3]);
    const uint64_t adds = std::stoull(argv[4]);
    try {
        std::string toml = "node = " + id + "\nbind = \"127.0.0.1:0\"\n";
        toml += seed == "bootstrap" ? "bootstrap = true\n" : "seeds = [\"" + seed + "\"]\n";
        osiris::Node node = osiris::Node::start(osiris::Config::from_toml(toml));
        std::cout << "READY " << node.local_addr() << std::endl;

        Counter counter;
        osiris::GroupHandlers handlers;
        handlers.on_view = [&](const osiris_view &view) {
            std::lock_guard<std::mutex> guard(counter.lock);
            counter.members = view.members_len;
            counter.changed.notify_all();
        };
        handlers.on_message = [&](const osiris_message &message, std::string_view payload) {
            std::lock_guard<std::mutex> guard(counter.lock);
            if (payload.substr(0, 4) == "add ") {
                counter.total += std::stoull(std::string(payload.substr(4)));
                counter.ops++;
                counter.trace = (counter.trace ^ message.sender.node) * 0x100000001b3u;
            } else if (payload == "done") {
                counter.done++;
            }
            counter.changed.notify_all();
        };
        handlers.on_query = [&](const osiris_query_request &, std::string_view)
            -> std::optional<std::string> {
            std::lock_guard<std::mutex> guard(counter.lock);
            return std::to_string(counter.total);
        };
        handlers.on_checkpoint = [&] {
            std::lock_guard<std::mutex> guard(counter.lock);
            return std::to_string(counter.total);
        };
        handlers.on_load = [&](std::string_view state) {
            std::lock_guard<std::mutex> guard(counter.lock);
            counter.total = std::stoull(std::string(state));
            std::cout << "LOADED " << counter.total << std::endl;
        };
        osiris::Group group = node.join("counter", std::move(handlers));

        counter.await([&] { return counter.members >= members; }, "members");
        for (uint64_t i = 0; i < adds; i++) group.ordered_send("add " + id);
        uint64_t expect = 0;
        for (size_t node_id = 1; node_id <= members; node_id++) expect += node_id * adds;
        counter.await([&] { return counter.total >= expect; }, "total");
        {
            std::lock_guard<std::mutex> guard(counter.lock);
            std::cout << "TOTAL " << counter.total << " ops=" << counter.ops << " trace=" << std::hex
                      << counter.trace << std::dec << std::endl;
        }

        osiris::QueryResult result = group.query("total");
        bool agree = result.replies.size() == members;
        for (const auto &reply : result.replies) agree = agree && reply.second == std::to_string(expect);
        std::cout << "QUERY replies=" << result.replies.size() << " agree=" << (agree ? "yes" : "no")
                  << std::endl;

        group.ordered_send("done");
        counter.await([&] { return counter.done >= members; }, "done");
        group.leave();
        std::cout << "BYE" << std::endl;
    } catch (const osiris::Error &error) {
        std::cerr << "FAILED " << error.what() << std::endl;
        return 1;
    }
    return 0;
}
