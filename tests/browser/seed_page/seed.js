// The seed's Vue component (seed/000_71ef00e6d721c8c2.txt), its <script> verbatim except
// `export default` -> `const component =`. Vue is not available offline, so a few lines at
// the bottom stand in for it: v-model on the input, @click on the button, and {{ output }}
// shown with textContent. (The seed's v-html is the XSS this project removed; this page
// exists to show that the seed's client logic works against our server.)
const component = {
data() {
return {
question: '',
output: '',
eventSource: null
}
},
methods: {
startStream() {
// 清空前一次输出
this.output = '';
// 关闭现有连接
if (this.eventSource) this.eventSource.close();
// 创建SSE连接
this.eventSource = new EventSource(`/ai/streamChat?question=${encodeURIComponent(this.question)}`);
// 监听消息事件
this.eventSource.addEventListener('update', event => {
const data = JSON.parse(event.data);
this.output += data.content; // 增量更新内容
});
// 监听结束事件
this.eventSource.addEventListener('end', () => {
this.eventSource.close();
console.log('流式传输结束');
});
// 错误处理
this.eventSource.addEventListener('error', err => {
console.error('SSE错误:', err);
this.eventSource.close();
});
}
},
beforeUnmount() {
// 组件卸载时关闭连接
if (this.eventSource) this.eventSource.close();
}
};

// --- a stand-in for Vue's mount --------------------------------------------------------
const state = component.data();
const output = document.getElementById("output");
const vm = new Proxy(state, {
  set(target, key, value) {
    target[key] = value;
    if (key === "output") output.textContent = value;
    return true;
  },
});
for (const [name, fn] of Object.entries(component.methods)) state[name] = fn.bind(vm);
document.getElementById("question").addEventListener("input", (e) => { vm.question = e.target.value; });
document.getElementById("start").addEventListener("click", () => vm.startStream());
window.seedVm = vm;
