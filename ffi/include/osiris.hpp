// osiris.hpp: a header-only C++17 RAII wrapper over the Osiris C API
// (osiris.h). Errors become osiris::Error exceptions; handles are move-only
// objects freed by their destructors; handlers are std::function objects.
//
// Threads: as in C, every handler runs on the node's data-plane thread. A
// handler must not throw out of the C callback: the trampolines below catch
// every exception, report it on stderr and go on (an exception cannot cross
// the C boundary).
//
// Lifetimes: a Group owns its handlers, and its destructor leaves the group
// (if not left yet) before freeing them, so no callback can see freed
// handlers. Do not destroy a Group or a Node inside a handler. Destroying a
// Node shuts it down (it leaves every group); its Groups may outlive it and
// then fail with OSIRIS_ERR_STOPPED.
#ifndef OSIRIS_HPP
#define OSIRIS_HPP

#include <osiris.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace osiris {

// A failed call: the C result code and the library's message.
class Error : public std::runtime_error {
  public:
    Error(osiris_result code, const std::string &message)
        : std::runtime_error(std::string(osiris_result_name(code)) + ": " + message), code_(code) {}
    osiris_result code() const noexcept { return code_; }

  private:
    osiris_result code_;
};

inline void check(osiris_result result) {
    if (result != OSIRIS_OK) throw Error(result, osiris_last_error_message());
}

inline std::string_view bytes_view(const uint8_t *data, size_t len) {
    return std::string_view(reinterpret_cast<const char *>(data), len);
}

class Config {
  public:
    static Config from_toml(const std::string &text) {
        osiris_config *config = nullptr;
        check(osiris_config_from_toml(text.c_str(), &config));
        return Config(config);
    }
    const osiris_config *get() const noexcept { return config_.get(); }

  private:
    struct Free {
        void operator()(osiris_config *config) const noexcept { osiris_config_free(config); }
    };
    explicit Config(osiris_config *config) : config_(config) {}
    std::unique_ptr<osiris_config, Free> config_;
};

// What a query collected, copied out of the C result.
struct QueryResult {
    std::vector<std::pair<osiris_member, std::string>> replies;
    std::vector<osiris_member> failed;
    bool timed_out = false;
};

// A group's handlers; any may be left empty.
struct GroupHandlers {
    std::function<void(const osiris_view &)> on_view;
    // The payload view is valid during the call only.
    std::function<void(const osiris_message &, std::string_view payload)> on_message;
    // Return the reply, or std::nullopt to answer later with Group::reply.
    std::function<std::optional<std::string>(const osiris_query_request &, std::string_view)>
        on_query;
    std::function<std::string()> on_checkpoint;
    std::function<void(std::string_view state)> on_load;
};

namespace detail {
template <typename Body> void guarded(const char *what, Body &&body) noexcept {
    try {
        body();
    } catch (const std::exception &error) {
        std::fprintf(stderr, "osiris.hpp: %s handler threw: %s\n", what, error.what());
    } catch (...) {
        std::fprintf(stderr, "osiris.hpp: %s handler threw\n", what);
    }
}
inline GroupHandlers &of(void *user) { return *static_cast<GroupHandlers *>(user); }
extern "C" inline void view_trampoline(void *user, const osiris_view *view) {
    guarded("view", [&] { of(user).on_view(*view); });
}
extern "C" inline void message_trampoline(void *user, const osiris_message *message) {
    guarded("message",
            [&] { of(user).on_message(*message, bytes_view(message->payload, message->len)); });
}
extern "C" inline void query_trampoline(void *user, const osiris_query_request *query,
                                        osiris_buf *reply) {
    guarded("query", [&] {
        auto answer = of(user).on_query(*query, bytes_view(query->payload, query->len));
        if (answer)
            osiris_buf_set(reply, reinterpret_cast<const uint8_t *>(answer->data()),
                           answer->size());
    });
}
extern "C" inline void checkpoint_trampoline(void *user, osiris_buf *state) {
    guarded("checkpoint", [&] {
        std::string bytes = of(user).on_checkpoint();
        osiris_buf_set(state, reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
    });
}
extern "C" inline void load_trampoline(void *user, const uint8_t *state, size_t len) {
    guarded("load", [&] { of(user).on_load(bytes_view(state, len)); });
}
} // namespace detail

class Group {
  public:
    Group(Group &&other) noexcept
        : group_(std::exchange(other.group_, nullptr)), handlers_(std::move(other.handlers_)),
          left_(other.left_) {}
    Group &operator=(Group &&) = delete;
    Group(const Group &) = delete;
    ~Group() {
        if (group_ == nullptr) return;
        if (!left_) osiris_group_leave(group_); // errors (node stopped) do not matter here
        osiris_group_free(group_);
    }

    void send(osiris_send_kind kind, std::string_view payload) const {
        check(osiris_send(group_, kind, reinterpret_cast<const uint8_t *>(payload.data()),
                          payload.size()));
    }
    void ordered_send(std::string_view payload) const { send(OSIRIS_SEND_ORDERED, payload); }
    void reply(const osiris_query_ref &handle, std::string_view payload) const {
        check(osiris_reply(group_, &handle, reinterpret_cast<const uint8_t *>(payload.data()),
                           payload.size()));
    }
    void flush() const { check(osiris_flush(group_)); }

    QueryResult query(std::string_view payload, const osiris_query_spec *spec = nullptr) const {
        osiris_query_result *raw = nullptr;
        check(osiris_query(group_, spec, reinterpret_cast<const uint8_t *>(payload.data()),
                           payload.size(), &raw));
        std::unique_ptr<osiris_query_result, void (*)(osiris_query_result *)> result(
            raw, osiris_query_result_free);
        QueryResult out;
        for (size_t i = 0; i < osiris_query_result_reply_count(raw); i++) {
            osiris_member from{};
            const uint8_t *data = nullptr;
            size_t len = 0;
            check(osiris_query_result_reply(raw, i, &from, &data, &len));
            out.replies.emplace_back(from, std::string(bytes_view(data, len)));
        }
        for (size_t i = 0; i < osiris_query_result_failed_count(raw); i++) {
            osiris_member member{};
            check(osiris_query_result_failed(raw, i, &member));
            out.failed.push_back(member);
        }
        out.timed_out = osiris_query_result_timed_out(raw);
        return out;
    }

    void leave() {
        left_ = true;
        check(osiris_group_leave(group_));
    }

  private:
    friend class Node;
    Group(osiris_group *group, std::unique_ptr<GroupHandlers> handlers)
        : group_(group), handlers_(std::move(handlers)) {}
    osiris_group *group_;
    std::unique_ptr<GroupHandlers> handlers_; // the callbacks' `user`: stable address
    bool left_ = false;
};

class Node {
  public:
    static Node start(const Config &config) {
        osiris_node *node = nullptr;
        check(osiris_node_start(config.get(), nullptr, &node));
        return Node(node);
    }
    Node(Node &&other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    Node &operator=(Node &&) = delete;
    Node(const Node &) = delete;
    ~Node() { osiris_node_free(node_); } // shuts down; NULL (moved from) is a no-op

    std::string local_addr() const {
        char buf[64];
        check(osiris_node_local_addr(node_, buf, sizeof buf));
        return buf;
    }

    // Joins; the handlers move into the Group, which keeps them alive.
    Group join(const std::string &name, GroupHandlers handlers) const {
        auto owned = std::make_unique<GroupHandlers>(std::move(handlers));
        osiris_group_callbacks callbacks{};
        callbacks.user = owned.get();
        if (owned->on_view) callbacks.on_view = detail::view_trampoline;
        if (owned->on_message) callbacks.on_message = detail::message_trampoline;
        if (owned->on_query) callbacks.on_query = detail::query_trampoline;
        if (owned->on_checkpoint) callbacks.on_checkpoint = detail::checkpoint_trampoline;
        if (owned->on_load) callbacks.on_load = detail::load_trampoline;
        osiris_group *group = nullptr;
        check(osiris_group_join(node_, name.c_str(), &callbacks, &group));
        return Group(group, std::move(owned));
    }

    void shutdown() const { check(osiris_node_shutdown(node_)); }

  private:
    explicit Node(osiris_node *node) : node_(node) {}
    osiris_node *node_;
};

} // namespace osiris

#endif // OSIRIS_HPP
