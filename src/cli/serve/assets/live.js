// A run in progress: its events arrive as server-sent events and are appended to the list.
// Text goes in through textContent only.
(function () {
  var list = document.getElementById("events");
  if (!list || !list.dataset.src || !window.EventSource) return;
  var state = document.getElementById("live-state");
  var source = new EventSource(list.dataset.src);
  source.addEventListener("run-event", function (message) {
    var event = JSON.parse(message.data);
    var item = document.createElement("li");
    item.className = "event";
    var kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = event.type;
    item.appendChild(kind);
    item.appendChild(document.createTextNode(" " + event.text));
    list.appendChild(item);
  });
  source.addEventListener("end", function () {
    source.close();
    if (state) {
      state.textContent = "The run has finished.";
      state.className = "done";
    }
  });
})();
