# ports.sh: sourced by the tests that start servers. free_port prints a port on 127.0.0.1 with
# nothing listening on it or on the next one (servers here take PORT and PORT + 1). The ports
# lie below the kernel's ephemeral range (32768-60999), so no outgoing connection takes one
# between the check and the server's bind.
free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/$((p + 1))) 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# run_proxy LISTEN_PORT UPSTREAM KEY SECRET LOG: the shared SigV4-verifying proxy, restarted when
# it exits (killing the loop stops the proxy too): it crashes (ERR_HTTP_HEADERS_SENT) when a client drops a connection mid-response,
# and the clients under test retry. Runs in the background: $! is the loop.
run_proxy() {
    (
        child=
        trap 'kill $child 2>/dev/null; exit 0' TERM
        while :; do
            node ../shared/tools/sigv4-proxy.js "$1" "$2" "$3" "$4" >>"$5" 2>&1 &
            child=$!
            wait $child
            sleep 0.05
        done
    ) &
}
