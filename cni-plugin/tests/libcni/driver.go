// A minimal container runtime: drives a CNI plugin chain through libcni,
// the library containerd, CRI-O and podman use. Built by the libcni test.
//
// usage: driver CONFLIST NETNS CONTAINER_ID BIN_DIR CACHE_DIR
// Prints the ADD result as JSON, then "CHECK ok", "DEL ok", "DEL again ok".
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
)

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: driver CONFLIST NETNS CONTAINER_ID BIN_DIR CACHE_DIR")
		os.Exit(2)
	}
	list, err := libcni.ConfListFromFile(os.Args[1])
	if err != nil {
		fail("load conflist", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{os.Args[4]}, os.Args[5], nil)
	rt := &libcni.RuntimeConf{ContainerID: os.Args[3], NetNS: os.Args[2], IfName: "eth0",
		Args: [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "libcni"}}}
	ctx := context.Background()
	res, err := cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		fail("ADD", err)
	}
	out, err := json.Marshal(res)
	if err != nil {
		fail("encode result", err)
	}
	fmt.Println(string(out))
	if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
		fail("CHECK", err)
	}
	fmt.Println("CHECK ok")
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		fail("DEL", err)
	}
	fmt.Println("DEL ok")
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		fail("DEL again", err)
	}
	fmt.Println("DEL again ok")
}
